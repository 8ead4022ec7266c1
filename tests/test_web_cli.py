"""``crmkit serve``: it builds the web app for the database and user given and serves it; a wrong user, an
unmigrated database or a missing Werkzeug is one line and a non-zero exit."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import urllib.request
from typing import Any

import pytest
from click.testing import CliRunner, Result
from werkzeug.serving import BaseWSGIServer

import crmkit
from crmkit import CRM
from crmkit.cli import main

GROWTH = "crm.customer_growth"


@pytest.fixture
def users(database: str) -> dict[str, int]:
    """The core's schema with a customer and four users; their ids by name."""
    with CRM(database, load_entry_points=False) as crm:
        crm.create_schema()
        crm.customers.create({"name": "Anna", "email": "anna@example.com"})
        return {
            name: crm.users.create({"name": name, "role": role, "active": name != "gone"})["id"]
            for name, role in (("viewer", "viewer"), ("manager", "manager"), ("gone", "admin"))
        }


def fetch(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def one_line_error(result: Result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_serve_builds_the_app_for_the_user_and_serves_it(
    database: str, users: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: dict[str, tuple[int, bytes]] = {}

    def serve_a_while(server: BaseWSGIServer) -> None:
        """Serve in a thread, ask the server over HTTP as a browser would, then stop."""
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_port}"
            for path in ("/", f"/reports/{GROWTH}.csv", "/reports/crm.field_history"):
                fetched[path] = fetch(base + path)
        finally:
            server.shutdown()
            thread.join()
            server.server_close()

    monkeypatch.setattr("crmkit.web.serve_forever", serve_a_while)
    viewer = users["viewer"]
    args = ["serve", "--url", database, "--no-plugins", "--port", "0", "--user", str(viewer)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    shown = re.fullmatch(
        r"serving the reports at http://127\.0\.0\.1:(\d+)/ as user (\d+); Ctrl\+C stops\n", result.stdout
    )
    assert shown and int(shown.group(1)) > 0 and int(shown.group(2)) == viewer, result.stdout
    assert fetched["/"][0] == 200 and b"Dashboard" in fetched["/"][1]
    with CRM(database, load_entry_points=False) as crm, crm.as_user(viewer):
        assert fetched[f"/reports/{GROWTH}.csv"] == (200, crm.reports.render(GROWTH, format="csv").encode())
    assert fetched["/reports/crm.field_history"][0] == 403  # the viewer's role applies: no audit:read


def test_serve_without_a_user_runs_as_the_application_and_takes_as_user_too(
    database: str, users: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses: list[int] = []

    def ask(server: BaseWSGIServer) -> None:
        app = server.app
        from werkzeug.test import Client

        statuses.append(Client(app).get("/reports/crm.field_history").status_code)

    monkeypatch.setattr("crmkit.web.serve_forever", ask)
    base = ["serve", "--url", database, "--no-plugins", "--port", "0"]
    assert "as the application (every permission)" in CliRunner().invoke(main, base).stdout
    assert f"as user {users['viewer']};" in CliRunner().invoke(main, [*base, "--as-user", str(users["viewer"])]).stdout
    assert statuses == [200, 403]


@pytest.mark.parametrize("who", ["gone", "nobody"])
def test_serve_refuses_a_user_who_is_not_there_or_not_active(
    database: str, users: dict[str, int], monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    monkeypatch.setattr("crmkit.web.serve_forever", lambda server: pytest.fail("served"))
    user = users.get(who, 999)
    args = ["serve", "--url", database, "--no-plugins", "--port", "0", "--user", str(user)]
    line = one_line_error(CliRunner().invoke(main, args))
    expected = f"user {user} is not active" if who == "gone" else f"user {user} not found"
    assert line == f"error: --user: {expected}"


def test_serve_refuses_an_unmigrated_database(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("crmkit.web.serve_forever", lambda server: pytest.fail("served"))
    with CRM(database, load_entry_points=False) as crm, crm.engine.connect():
        pass  # an empty database: on SQLite the file now exists
    line = one_line_error(CliRunner().invoke(main, ["serve", "--url", database, "--no-plugins", "--port", "0"]))
    assert "is not migrated" in line and "run 'crmkit db upgrade --url URL'" in line
    with CRM(database, load_entry_points=False) as crm:
        crm.create_schema()  # the core only: the installed fitness edition's tables are missing
    line = one_line_error(CliRunner().invoke(main, ["serve", "--url", database, "--port", "0"]))
    assert "is not migrated" in line


def test_serve_without_werkzeug_says_how_to_install_it(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with CRM(database, load_entry_points=False) as crm:
        crm.create_schema()
    # should the loaded module be found after all, the test fails rather than serve for ever
    monkeypatch.setattr("crmkit.web.serve_forever", lambda server: pytest.fail("served"))
    for name in [m for m in sys.modules if m == "werkzeug" or m.startswith("werkzeug.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "werkzeug", None)
    monkeypatch.delitem(sys.modules, "crmkit.web", raising=False)
    monkeypatch.delattr(crmkit, "web", raising=False)  # else `from crmkit import web` finds the loaded one
    line = one_line_error(CliRunner().invoke(main, ["serve", "--url", database, "--no-plugins", "--port", "0"]))
    assert line == "error: the web app needs Werkzeug: pip install 'crmkit[web]'"


def test_importing_crmkit_and_its_command_line_does_not_import_werkzeug() -> None:
    code = "import sys, crmkit, crmkit.cli, crmkit.reports; print(sorted(m for m in sys.modules if 'werkzeug' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_serve_is_listed_with_its_options() -> None:
    assert "serve" in CliRunner().invoke(main, ["--help"]).output
    shown = CliRunner().invoke(main, ["serve", "-h"]).output
    assert all(option in shown for option in ("--url", "--port", "--host", "--user"))


def test_a_served_address_is_printed_as_a_browser_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from crmkit import web

    server: Any = type("S", (), {"host": "::1", "server_port": 8123})()
    assert web.address(server) == "http://[::1]:8123/"
    assert web.local("127.0.0.1") and web.local("::1") and web.local("localhost")
    assert not web.local("0.0.0.0") and not web.local("192.168.1.10")
