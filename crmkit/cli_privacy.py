"""``crmkit person``: a person's data as one JSON document (right of access), and its erasure.

Erasure needs the CRM's privacy key (``$CRMKIT_PRIVACY_KEY``) and ``--yes``: it cannot be undone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from crmkit.cli import CommandError, crm_options

if TYPE_CHECKING:
    from crmkit.app import CRM


@click.group("person")
def person() -> None:
    """A person's data: export it as one JSON document, or erase it."""


@person.command("export")
@crm_options
@click.argument("customer_id", type=click.IntRange(min=1))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File (default: stdout)."
)
def export(crm: CRM, customer_id: int, output: Path | None) -> None:
    """Everything held about customer CUSTOMER_ID, as one JSON document."""
    document = json.dumps(crm.privacy.export(customer_id), ensure_ascii=False, indent=2)
    if output is None:
        click.echo(document)
        return
    try:
        output.write_text(document + "\n", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"customer {customer_id}: written to {output}")


@person.command("erase")
@crm_options
@click.argument("customer_id", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why (the request and its date); kept in the audit log.")
@click.option("--yes", is_flag=True, help="Confirm: an erasure cannot be undone.")
def erase(crm: CRM, customer_id: int, reason: str, yes: bool) -> None:
    """Anonymise every personal value held about CUSTOMER_ID and keep a suppression entry."""
    if not yes:
        raise CommandError(f"erasing customer {customer_id} cannot be undone: add --yes to confirm")
    counts = crm.privacy.erase(customer_id, reason=reason)
    rows = ", ".join(f"{table} {n}" for table, n in counts.items() if n)
    click.echo(f"customer {customer_id}: erased ({rows})")
