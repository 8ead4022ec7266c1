"""The reports in the browser (crmkit.web): routes, downloads, parameters and the access rules, through
Werkzeug's test client."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable
from typing import Any

import attrs
import openpyxl
import pytest
from crmkit_fitness import FitnessConfig, FitnessPlugin
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client, TestResponse
from werkzeug.wrappers import Response

from crmkit import CRM
from crmkit.web import ReportsApp

GROWTH = "crm.customer_growth"


@attrs.frozen
class Made:
    """A customer the test created: where and when, for counting by hand."""

    branch: str | None
    created_at: dt.datetime


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def months_back(today: dt.date, back: int) -> dt.date:
    index = today.year * 12 + today.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def grow(crm: CRM, on: dt.date | None = None) -> list[Made]:
    """Customers created on the 15th of each of the last six months, more each month (1 six months ago, 6
    last month), in branches north and south and one in none."""
    day0 = on or today()
    branches = ("north", "south")
    made = []
    n = 0
    for back in range(6, 0, -1):
        day = months_back(day0, back).replace(day=15)
        for i in range(7 - back):
            n += 1
            branch = None if n == 5 else branches[(n + i) % 2]
            created_at = dt.datetime.combine(day, dt.time(10, i), dt.UTC)
            crm.customers.create_historical(
                {"name": f"Customer {n}", "email": f"c{n}@example.com", "branch": branch}, created_at=created_at
            )
            made.append(Made(branch, created_at))
    return made


def client(crm: CRM, user: int | None = None, **kwargs: Any) -> Client:
    return Client(ReportsApp(crm, user=lambda environ: user, **kwargs))


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def rows_of(response: TestResponse) -> list[dict[str, Any]]:
    assert response.status_code == 200, text(response)
    rows: list[dict[str, Any]] = json.loads(response.data)["rows"]
    return rows


def headline(page: str, name: str) -> str:
    found = re.search(rf'data-headline="{re.escape(name)}">\s*<div class="label">[^<]*</div>\s*'
                      r'<div class="value">([^<]*)</div>', page)  # fmt: skip
    assert found, f"no headline {name}"
    return found.group(1)


@pytest.fixture
def crm(crm_factory: Callable[..., CRM]) -> CRM:
    return crm_factory()


def test_the_dashboard_shows_the_headline_numbers_for_the_period_asked(crm: CRM) -> None:
    made = grow(crm)
    crm.customers.create({"name": "Today 1"})
    crm.customers.create({"name": "Today 2"})
    web = client(crm)
    day = web.get("/?period=day")
    assert day.status_code == 200 and day.mimetype == "text/html"
    assert headline(text(day), "crm.new_customers") == "2"
    # this year holds every customer made since January
    year = text(web.get("/?period=year"))
    this_year = today().year
    assert headline(year, "crm.new_customers") == str(2 + sum(m.created_at.year == this_year for m in made))
    assert '<span aria-current="true">Year</span>' in year and 'href="/?period=day"' in year
    assert f'href="/reports/{GROWTH}"' in year  # the reports are listed, linked to their pages
    assert web.get("/").status_code == 200  # the month by default
    wrong = web.get("/?period=fortnight")
    assert wrong.status_code == 400 and "period: must be one of day, week, month, quarter, year" in text(wrong)


def test_a_report_page_has_the_form_of_its_parameters_and_three_downloads(crm: CRM) -> None:
    page = client(crm).get(f"/reports/{GROWTH}?since=2026-01-01&until=2026-04-01")
    assert page.status_code == 200
    html = text(page)
    assert f'<form class="params" method="get" action="/reports/{GROWTH}">' in html
    assert '<input type="date" name="since" value="2026-01-01"' in html
    assert '<input type="date" name="until" value="2026-04-01"' in html
    for ext in ("csv", "xlsx", "json"):  # the same parameters, the defaults of the others filled in
        link = re.escape(f'href="/reports/{GROWTH}.{ext}?since=2026-01-01&amp;until=2026-04-01')
        assert re.search(rf'{link}(&amp;[^"]*)?" download', html), ext
    assert page.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_downloads_are_what_the_api_renders_for_the_same_parameters(crm: CRM) -> None:
    grow(crm)
    params = {"since": months_back(today(), 4).isoformat(), "until": today().isoformat()}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    web = client(crm)

    csv_file = web.get(f"/reports/{GROWTH}.csv?{query}")
    assert csv_file.status_code == 200 and csv_file.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = f"attachment; filename={GROWTH}-{params['since']}-{params['until']}"
    assert csv_file.headers["Content-Disposition"] == f"{disposition}.csv"
    assert text(csv_file) == crm.reports.render(GROWTH, params, format="csv")
    assert len(text(csv_file).splitlines()) == 1 + 5  # the header and five months

    json_file = web.get(f"/reports/{GROWTH}.json?{query}")
    assert json_file.headers["Content-Type"] == "application/json"
    assert json_file.headers["Content-Disposition"] == f"{disposition}.json"
    expected = json.loads(crm.reports.render(GROWTH, params, format="json"))
    got = json.loads(json_file.data)
    assert {**got, "generated_at": None} == {**expected, "generated_at": None}

    xlsx_file = web.get(f"/reports/{GROWTH}.xlsx?{query}")
    assert xlsx_file.headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert xlsx_file.headers["Content-Disposition"] == f"{disposition}.xlsx"

    def cells(data: bytes) -> list[tuple[Any, ...]]:
        return list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))  # type: ignore[union-attr]

    assert cells(xlsx_file.data) == cells(crm.reports.xlsx(crm.reports.run(GROWTH, params)))
    assert len(cells(xlsx_file.data)) == 6


def test_a_user_of_one_branch_counts_only_the_customers_that_branch_reaches(crm: CRM) -> None:
    made = grow(crm)
    north = crm.users.create({"name": "Nora", "role": "manager", "branch": "north"})["id"]
    since, until = months_back(today(), 6), today() + dt.timedelta(days=1)
    query = f"since={since.isoformat()}&until={until.isoformat()}"
    # by hand: a branch user reaches the customers of their branch and those of no branch
    reached = [m for m in made if m.branch in ("north", None)]
    assert 0 < len(reached) < len(made)

    rows = rows_of(client(crm, north).get(f"/reports/{GROWTH}.json?{query}"))
    assert sum(r["new"] for r in rows) == len(reached) and rows[-1]["end"] == len(reached)
    everyone = rows_of(client(crm).get(f"/reports/{GROWTH}.json?{query}"))
    assert sum(r["new"] for r in everyone) == len(made)
    # per month too
    for row in rows:
        year, month = map(int, row["month"].split("-"))
        assert row["new"] == sum((m.created_at.year, m.created_at.month) == (year, month) for m in reached), row


def test_a_viewer_reads_the_call_list_without_names_or_phones(crm_factory: Callable[..., CRM]) -> None:
    club = crm_factory([FitnessPlugin(FitnessConfig(holdout=0.0))])
    for n, name in enumerate(("Zoe Quintessa", "Yann Ortega")):
        club.customers.create({"name": name, "phone": f"+1 646 555 010{n}", "stage": "adaptation"})
    viewer = club.users.create({"name": "Vic", "role": "viewer"})["id"]
    manager = club.users.create({"name": "Mia", "role": "manager"})["id"]
    name = "fitness.members_at_risk"

    seen = rows_of(client(club, manager).get(f"/reports/{name}.json"))
    assert sorted(r["name"] for r in seen) == ["Yann Ortega", "Zoe Quintessa"]
    assert all(r["phone"] for r in seen)

    masked = client(club, viewer)
    rows = rows_of(masked.get(f"/reports/{name}.json"))
    assert len(rows) == 2 and all(r["name"] is None and r["phone"] is None for r in rows)
    for path in (f"/reports/{name}", f"/reports/{name}.csv", f"/reports/{name}.xlsx"):
        response = masked.get(path)
        assert response.status_code == 200
        assert b"Zoe" not in response.data and b"555" not in response.data, path
    csv_rows = text(masked.get(f"/reports/{name}.csv")).splitlines()
    assert len(csv_rows) == 3 and all(line.startswith(",,") for line in csv_rows[1:])


def test_the_field_history_needs_audit_read(crm: CRM) -> None:
    viewer = crm.users.create({"name": "Vic", "role": "viewer"})["id"]
    manager = crm.users.create({"name": "Mia", "role": "manager"})["id"]
    for path in ("/reports/crm.field_history", "/reports/crm.field_history.csv"):
        refused = client(crm, viewer).get(path)
        assert refused.status_code == 403, path
        assert f"user {viewer} (viewer) may not audit:read" in text(refused)
    assert "crm.field_history" not in text(client(crm, viewer).get("/"))  # nor offered
    assert client(crm, manager).get("/reports/crm.field_history").status_code == 200
    assert "crm.field_history" in text(client(crm, manager).get("/"))
    # an error page's menu is the user's too
    assert "crm.field_history" not in text(client(crm, viewer).get("/nowhere"))
    assert "crm.field_history" in text(client(crm, manager).get("/nowhere"))


def test_a_role_without_reports_run_is_refused_every_page(crm: CRM) -> None:
    operator = crm.users.create({"name": "Olga", "role": "operator"})["id"]
    for path in ("/", f"/reports/{GROWTH}", f"/reports/{GROWTH}.json"):
        refused = client(crm, operator).get(path)
        assert refused.status_code == 403 and "may not reports:run" in text(refused), path
        assert f"/reports/{GROWTH}" not in text(refused)  # and is offered none


def test_a_bad_parameter_gives_the_form_again_with_the_fields_message(crm: CRM) -> None:
    web = client(crm)
    page = web.get(f"/reports/{GROWTH}?since=2026-13-01&until=2026-06-01")
    assert page.status_code == 400 and page.mimetype == "text/html"
    html = text(page)
    assert '<li data-field="since"><strong>Since</strong>: Not a valid date.</li>' in html
    assert '<input type="date" name="since" value="2026-13-01"' in html  # what was sent, to correct
    assert '<input type="date" name="until" value="2026-06-01"' in html
    assert "Traceback" not in html and f"/reports/{GROWTH}.csv" not in html  # no downloads of nothing
    # the report's own check, and a download asked with bad parameters
    backwards = web.get(f"/reports/{GROWTH}.csv?since=2026-06-01&until=2026-01-01")
    assert backwards.status_code == 400 and "must not be before since (2026-06-01)" in text(backwards)
    # an empty field is a parameter not given: its default applies
    assert web.get(f"/reports/{GROWTH}?since=&until=").status_code == 200


def test_unknown_reports_and_paths_are_404_and_only_get_is_served(crm: CRM) -> None:
    web = client(crm)
    for path in ("/reports/crm.nothing", "/reports/crm.nothing.csv", "/nowhere"):
        missing = web.get(path)
        assert missing.status_code == 404 and missing.mimetype == "text/html", path
    assert "report &#39;crm.nothing&#39; not found" in text(web.get("/reports/crm.nothing.csv"))
    posted = web.post(f"/reports/{GROWTH}")
    assert posted.status_code == 405 and posted.headers["Allow"] == "GET, HEAD"
    assert web.get("/definitions").status_code == 200


def test_a_crm_that_requires_a_user_refuses_anonymous_requests(crm_factory: Callable[..., CRM]) -> None:
    crm = crm_factory(require_user=True)
    with crm.as_system("setup"):
        admin = crm.users.create({"name": "Ada", "role": "admin"})["id"]
        gone = crm.users.create({"name": "Gus", "role": "admin", "active": False})["id"]
    for path in ("/", f"/reports/{GROWTH}", f"/reports/{GROWTH}.csv", "/definitions"):
        refused = client(crm).get(path)
        assert refused.status_code == 401 and "Sign in to see the reports." in text(refused), path
        assert Client(ReportsApp(crm)).get(path).status_code == 401  # no user callable at all
        assert "/reports/" not in text(refused)  # the menu lists no report to whoever this is
    assert client(crm, admin).get(f"/reports/{GROWTH}.csv").status_code == 200
    assert client(crm, gone).get("/").status_code == 403  # a session of a user since deactivated
    assert client(crm, 999).get("/").status_code == 403  # or deleted


def test_mounted_under_a_path_every_link_keeps_to_it(crm: CRM) -> None:
    def host(environ: Any, start_response: Any) -> Any:
        return Response("the host app")(environ, start_response)

    mounted = Client(DispatcherMiddleware(host, {"/crm": ReportsApp(crm)}))
    html = text(mounted.get(f"/crm/reports/{GROWTH}"))
    assert f'action="/crm/reports/{GROWTH}"' in html and 'href="/crm/"' in html
    assert f'href="/crm/reports/{GROWTH}.csv?' in html
    assert mounted.get("/crm/").status_code == 200 and text(mounted.get("/")) == "the host app"
    # a host that passes whole paths names the prefix
    prefixed = client(crm, prefix="/crm")
    assert f'action="/crm/reports/{GROWTH}"' in text(prefixed.get(f"/crm/reports/{GROWTH}"))
    assert prefixed.get(f"/reports/{GROWTH}").status_code == 404


def test_mounted_in_a_flask_app_the_user_is_the_one_its_session_signed_in(crm_factory: Callable[..., CRM]) -> None:
    """The pattern of docs/web.md: the host's sign-in keeps the user in its session, the reports read it."""
    from flask import Flask, session

    crm = crm_factory(require_user=True)
    with crm.as_system("setup"):
        viewer = crm.users.create({"name": "Vic", "role": "viewer"})["id"]
        manager = crm.users.create({"name": "Mia", "role": "manager"})["id"]
    app = Flask(__name__)
    app.secret_key = "test"

    @app.get("/login/<int:user_id>")
    def login(user_id: int) -> str:
        session["user_id"] = user_id
        return "signed in"

    def signed_in(environ: dict[str, Any]) -> int | None:
        with app.request_context(environ):
            user_id: int | None = session.get("user_id")
            return user_id

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/crm": ReportsApp(crm, user=signed_in)})  # type: ignore[method-assign]
    browser = app.test_client()
    assert browser.get("/crm/").status_code == 401
    assert browser.get(f"/login/{viewer}").status_code == 200
    assert browser.get("/crm/").status_code == 200
    assert browser.get("/crm/reports/crm.field_history").status_code == 403
    browser.get(f"/login/{manager}")
    assert browser.get("/crm/reports/crm.field_history").status_code == 200
