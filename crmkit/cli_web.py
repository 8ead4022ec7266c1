"""``crmkit serve``: the dashboard and the reports in the browser, on Werkzeug's development server.

For a club's back office on one machine, or development: the server has no sign-in of its own, so every
request runs as ``--user`` (or ``--as-user``, ``$CRMKIT_USER``), else as the application. A host
application mounts :class:`crmkit.web.ReportsApp` behind its own sign-in instead (``docs/web.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from crmkit.cli import CommandError, crm_options
from crmkit.errors import CRMError

if TYPE_CHECKING:
    from crmkit.app import CRM


@click.command("serve")
@crm_options
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="The port (0: any free one)."
)
@click.option(
    "--user",
    "user_id",
    type=click.IntRange(min=1),
    default=None,
    metavar="ID",
    help="Run every request as this user: their role, branches and masking (default: --as-user, else the"
    " application, which sees everything).",
)
def serve(crm: CRM, host: str, port: int, user_id: int | None) -> None:
    """Serve the dashboard and every report (a form of its parameters; CSV, XLSX and JSON downloads) at
    http://HOST:PORT/ until Ctrl+C."""
    try:
        from crmkit import web
    except ImportError as exc:
        raise CommandError(str(exc)) from None
    from crmkit import migrate

    if not migrate.up_to_date(crm):
        raise CommandError(
            "the database is not migrated to the installed crmkit and plugins: run 'crmkit db upgrade --url URL'"
        )
    if user_id is None:
        user_id = crm.access.actor().user_id  # --as-user or $CRMKIT_USER
    if user_id is not None:
        try:
            crm.users.actor(user_id)  # there, and active
        except CRMError as exc:
            raise CommandError(f"--user: {exc}") from None
    fixed = user_id
    app = web.ReportsApp(crm, user=lambda environ: fixed)
    server = web.make_server(app, host, port)
    who = f"as user {user_id}" if user_id is not None else "as the application (every permission)"
    click.echo(f"serving the reports at {web.address(server)} {who}; Ctrl+C stops")
    if not web.local(host):
        click.echo(f"warning: {host} is reachable from other machines, and this server has no sign-in", err=True)
    web.serve_forever(server)
