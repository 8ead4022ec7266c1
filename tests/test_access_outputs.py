"""Reports, KPIs, trigger figures, exports, plugin tables and the command line keep to the customers the
user reaches, inside their SQL, and show none of the personal values to a role without
``customers:read_personal``.

A club with the fitness plugin has customers in two branches and in none, each with distinctive personal
values. Every expected number is counted here, by hand, from the data this file creates; the personal
values are looked for as text in every rendering and every export file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import attrs
import openpyxl
import pytest
from click.testing import CliRunner
from crmkit_fitness import FitnessConfig, FitnessPlugin, fitness
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, make_url

from crmkit import CRM, AccessDenied, NotFound, RoleSpec, ValidationError, hookimpl
from crmkit.cli import main
from crmkit.reports import FORMATS, kpis
from crmkit.testing import database_of
from crmkit.triggers import Goal, TaskAction, Trigger

_meta = MetaData()
GUARDIANS = Table(
    "outputs_guardians",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("crm_customers.id", ondelete="CASCADE"), nullable=False),
    Column("relation", String(20), nullable=False),
    Column("guardian_phone", String(40), info={"crmkit": {"personal": True}}),
)


class Outputs:
    """An analyst who exports for the head office without personal data, a guardians table with a personal
    column, and a trigger with a goal that only records whom it fired for."""

    plugin_name = "outputs"

    @hookimpl
    def crmkit_register_roles(self) -> list[RoleSpec]:
        reads = {"customers:read", "activities:read", "tasks:read", "customers:export", "reports:run"}
        return [RoleSpec("analyst", "Analyst", reads, scope="branches")]

    @hookimpl
    def crmkit_register_models(self) -> list[Any]:
        return [GUARDIANS]

    @hookimpl
    def crmkit_register_triggers(self) -> list[Trigger]:
        return [
            Trigger(
                "outputs.everyone",
                condition=lambda q: q.customer.c.id.is_not(None),
                goal=Goal(kinds=("purchase",)),
            )
        ]


@attrs.frozen
class Person:
    key: str
    branch: str | None
    member: bool  # sold a membership (so an active member, with a purchase and a check-in)

    @property
    def name(self) -> str:
        return f"Zyxwq Personal {self.key}"

    @property
    def email(self) -> str:
        return f"zyxwq.{self.key.lower()}@example.org"

    @property
    def digits(self) -> str:
        return f"41555501{ord(self.key) - 54:02d}"  # A -> ...0111

    @property
    def birthday(self) -> str:
        return f"1981-02-{ord(self.key) - 64:02d}"

    @property
    def card(self) -> str:
        return f"ZQCARD{self.key}77"

    @property
    def guardian(self) -> str:
        return f"+1 212 555 09{ord(self.key) - 54:02d}"

    def personal_values(self) -> list[str]:
        return [self.name, self.email, self.birthday, self.card, self.guardian]


PEOPLE = (
    Person("A", "north", True),
    Person("B", "north", False),
    Person("C", "south", True),
    Person("D", "south", True),
    Person("E", None, True),
)
NORTH = {"north", None}  # what a user of branch north reaches: north, and the customers of no branch


def reached(person: Person) -> bool:
    return person.branch in NORTH


class Club:
    def __init__(self, crm: CRM, ids: dict[str, int], users: dict[str, int]) -> None:
        self.crm, self.ids, self.users = crm, ids, users

    def reached_ids(self) -> list[int]:
        return sorted(self.ids[p.key] for p in PEOPLE if reached(p))


@pytest.fixture
def club(crm_factory: Any) -> Club:
    crm: CRM = crm_factory([FitnessPlugin(FitnessConfig(holdout=0.0)), Outputs()])
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    users = {
        "viewer": crm.users.create({"name": "Vic", "role": "viewer", "branch": "north"})["id"],
        "manager": crm.users.create({"name": "Max", "role": "manager", "branch": "north"})["id"],
        "analyst": crm.users.create({"name": "Ana", "role": "analyst", "branch": "north"})["id"],
        "trainer": crm.users.create({"name": "Tina", "role": "operator", "branch": "north"})["id"],
    }
    f = fitness(crm)
    plan = f.create_plan({"name": "Monthly", "duration_days": 30, "price": "50.00"})["id"]
    trainer = f.add_trainer({"name": "Tina", "user_id": users["trainer"], "speciality": "yoga"})["id"]
    yoga = f.add_class({"name": "Yoga", "trainer_id": trainer, "club": "main", "weekday": 0, "starts_at": "07:00"})
    ids: dict[str, int] = {}
    checkins = []
    for person in PEOPLE:
        customer = crm.customers.create_historical(
            {
                "name": person.name,
                "email": person.email,
                "phone": f"+1 {person.digits[:3]} {person.digits[3:6]} {person.digits[6:]}",
                "birthday": person.birthday,
                "card_number": person.card,
                "branch": person.branch,
                "source": "web",
            },
            created_at=now - dt.timedelta(days=100),
            stage="active" if person.member else None,
            stage_changed_at=now - dt.timedelta(days=95),
        )
        ids[person.key] = customer["id"]
        crm.table("outputs_guardians").insert(
            {"customer_id": customer["id"], "relation": "parent", "guardian_phone": person.guardian}
        )
        crm.activities.log({"customer_id": customer["id"], "kind": "note", "subject": "met at the desk"})
        crm.tasks.create({"customer_id": customer["id"], "title": "Call back", "assignee_id": users["trainer"]})
        if person.member:
            f.sell({"customer_id": customer["id"], "plan_id": plan, "starts_on": today - dt.timedelta(days=45)})
            when = now - dt.timedelta(days=20)
            checkins.append(
                {
                    "customer_id": customer["id"],
                    "kind": "checkin",
                    "occurred_at": when,
                    "data": {"club": "main", "class_id": yoga["id"]},
                }
            )
    assert crm.activities.ingest(checkins).ok
    crm.tasks.create({"title": "Order towels"})  # about no customer: every user reaches it
    crm.targets.set(
        {
            "user_id": users["trainer"],
            "metric": "contacts",
            "period_start": (today - dt.timedelta(days=30)).isoformat(),
            "period_end": today.isoformat(),
            "planned": 10,
        }
    )
    crm.triggers.run(names=["outputs.everyone"])
    return Club(crm, ids, users)


# -- looking for personal values ------------------------------------------------------------------------


def leaked(text: str) -> list[str]:
    """The personal values of any customer found in ``text`` (phone numbers by their digits, however
    they are written)."""
    found = [value for p in PEOPLE for value in p.personal_values() if value in text]
    digits = re.sub(r"\D", "", text)
    found += [p.digits for p in PEOPLE if p.digits in digits]
    found += [p.guardian for p in PEOPLE if re.sub(r"\D", "", p.guardian) in digits]
    return found


def xlsx_text(data: bytes) -> str:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    return "\n".join(" | ".join("" if v is None else str(v) for v in row) for row in sheet.iter_rows(values_only=True))


def exported(crm: CRM, what: str, fmt: str) -> tuple[str, int]:
    """The text of an export of ``what`` in ``fmt``, and how many records it holds."""
    out = io.BytesIO()
    report = getattr(crm.exports, what)(out, format=fmt)
    data = out.getvalue()
    return (xlsx_text(data) if fmt == "xlsx" else data.decode()), report.rows


# -- masking on every output ----------------------------------------------------------------------------


#: Reports that have no rows for the club above, and why (every other report must have rows).
NO_ROWS = {"fitness.trigger_effectiveness": "no fitness trigger is run: their tasks would name the members"}


def test_every_report_in_every_format_shows_a_viewer_no_personal_value(club: Club) -> None:
    crm = club.crm
    names = [r.name for r in crm.reports.all()]
    assert {"fitness.members_at_risk", "crm.leads_to_deals", "crm.trigger_effectiveness"} <= set(names)
    with crm.as_user(club.users["manager"]):  # the values are in the reports, to be hidden
        shown = crm.reports.render("fitness.members_at_risk", format="csv")
    assert {p.name for p in PEOPLE if reached(p) and p.member} <= set(leaked(shown))
    viewer = crm.users.actor(club.users["viewer"])
    with crm.as_user(club.users["viewer"]):
        for name in names:
            needs = crm.reports.get(name).permissions
            if not all(viewer.can(p) for p in needs):  # the field history reads the audit log
                with pytest.raises(AccessDenied, match=needs[0]):
                    crm.reports.run(name)
                continue
            rows = crm.reports.run(name).rows
            assert bool(rows) is (name not in NO_ROWS), name
            for fmt in FORMATS:
                text = crm.reports.render(name, format=fmt)
                assert leaked(text) == [], (name, fmt)
        at_risk = crm.reports.run("fitness.members_at_risk").rows
    assert at_risk and all(row["name"] is None and row["phone"] is None for row in at_risk)
    assert {row["stage"] for row in at_risk} == {"active"}  # the rest of the row is as it is


@pytest.mark.parametrize("what", ["customers", "activities", "tasks"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
def test_every_export_shows_an_analyst_no_personal_value_and_keeps_to_the_branch(
    club: Club, what: str, fmt: str
) -> None:
    crm = club.crm
    with crm.as_user(club.users["manager"]):
        text, _ = exported(crm, "customers", fmt)
    assert {p.name for p in PEOPLE if reached(p)} <= set(leaked(text))
    with crm.as_user(club.users["analyst"]):
        text, rows = exported(crm, what, fmt)
    assert leaked(text) == []
    north = [p for p in PEOPLE if reached(p)]
    expected = {  # counted from what the fixture made
        "customers": len(north),
        # a note each, and a purchase and a check-in each member
        "activities": sum(1 + 2 * p.member for p in north),
        # a call back each, and the towels (about no customer)
        "tasks": len(north) + 1,
    }[what]
    assert rows == expected


def test_a_viewer_reads_no_personal_column_of_a_plugin_table_nor_filters_by_it(club: Club) -> None:
    crm = club.crm
    table = crm.table("outputs_guardians")
    with crm.as_user(club.users["manager"]):
        assert sorted(r["guardian_phone"] for r in table.list()) == sorted(p.guardian for p in PEOPLE if reached(p))
    with crm.as_user(club.users["viewer"]):
        records = [*table.list(), table.get(1)]
        assert all(r["guardian_phone"] is None and r["relation"] == "parent" for r in records)
        with pytest.raises(AccessDenied, match=r"personal data \(guardian_phone\)"):
            table.list({"guardian_phone": PEOPLE[0].guardian})
    assert table.personal == ("guardian_phone",)


def test_the_command_line_prints_a_viewer_no_personal_value(club: Club, tmp_path: Path) -> None:
    url, options = database_of(club.crm)
    if options:  # PostgreSQL: the test's own schema, named in the URL for the command's own CRM
        url = make_url(url).update_query_dict({"options": options["connect_args"]["options"]}).render_as_string(False)
    base = ["--url", url, "--plugin", f"{__name__}:Outputs"]
    runner = CliRunner()

    def run(*args: str, user: str) -> str:
        result = runner.invoke(main, [*args, *base, "--as-user", str(club.users[user])])
        assert result.exit_code == 0, result.output
        return result.output

    assert leaked(run("report", "fitness.members_at_risk", "--format", "csv", user="manager"))
    for name in ("fitness.members_at_risk", "crm.leads_to_deals"):
        for fmt in FORMATS:
            assert leaked(run("report", name, "--format", fmt, user="viewer")) == []
    assert leaked(run("tasks", "next", user="viewer")) == []
    for fmt in ("csv", "jsonl"):
        target = tmp_path / f"out.{fmt}"
        run("export", "customers", "-o", str(target), user="analyst")
        text = target.read_text(encoding="utf-8")
        assert leaked(text) == []
        assert len(text.strip().splitlines()) == len(club.reached_ids()) + (fmt == "csv")


# -- branch scoping in reports, KPIs, trigger figures and single reads ------------------------------------


@pytest.mark.parametrize("user", ["viewer", "manager"])
def test_a_north_user_counts_only_north_customers_in_every_report(club: Club, user: str) -> None:
    north = [p for p in PEOPLE if reached(p)]
    members = [p for p in north if p.member]
    crm = club.crm
    with crm.as_user(club.users[user]):
        run = crm.reports.run
        assert run("crm.leads_to_deals").rows[-1] | {"per_100": None} == {
            "group": "(all)",
            "leads": len(north),
            "deals": len(members),
            "per_100": None,
        }
        assert sum(r["new"] for r in run("crm.customer_growth").rows) == len(north)
        assert sum(r["purchases"] for r in run("crm.average_check").rows) == len(members)
        assert sum(r["paying_customers"] for r in run("crm.average_check").rows) == len(members)
        assert sum(r["leads"] for r in run("crm.lead_processing_time").rows) == len(north)
        funnel = {r["stage"]: r["customers"] for r in run("crm.lifecycle_funnel").rows}
        assert funnel["active"] == len(members)
        assert {r["size"] for r in run("crm.cohort_retention").rows} == {len(members)}
        effect = {r["trigger"]: r["fired"] for r in run("crm.trigger_effectiveness").rows}
        assert effect["outputs.everyone"] == len(north)
        assert sum(r["checkins"] for r in run("fitness.attendance").rows) == len(members)
        (tina,) = run("fitness.trainer_load").rows
        assert (tina["class_checkins"], tina["members"]) == (len(members), len(members))
        assert len(run("fitness.members_at_risk").rows) == len(members)
        assert sum(r["ending"] for r in run("fitness.renewal_rate").rows) == len(members)
        firings = crm.triggers.firings("outputs.everyone").items
        assert sorted(f["customer_id"] for f in firings) == club.reached_ids()
    # the application reaches everybody: the same reports count every customer
    assert crm.reports.run("crm.leads_to_deals").rows[-1]["leads"] == len(PEOPLE)
    assert len(crm.reports.run("fitness.members_at_risk").rows) == sum(p.member for p in PEOPLE)


def test_a_kpi_called_with_an_actor_counts_only_what_it_reaches(club: Club) -> None:
    crm = club.crm
    since, until = dt.date.today() - dt.timedelta(days=400), dt.date.today() + dt.timedelta(days=1)
    viewer = crm.users.actor(club.users["viewer"])
    assert kpis.leads_to_deals(crm, since=since, until=until, actor=viewer)[-1]["leads"] == len(club.reached_ids())
    assert kpis.leads_to_deals(crm, since=since, until=until)[-1]["leads"] == len(PEOPLE)
    new = sum(r["new"] for r in kpis.customer_growth(crm, since=since, until=until, actor=viewer))
    assert new == len(club.reached_ids())


def test_an_activity_or_task_about_a_customer_out_of_reach_is_not_found(club: Club) -> None:
    crm = club.crm
    south = club.ids["C"]
    activity = crm.activities.for_customer(south)[0]["id"]
    task = crm.tasks.open(customer_id=south)[0]["id"]
    mine = crm.tasks.open(customer_id=club.ids["A"])[0]["id"]
    with crm.as_user(club.users["viewer"]):
        with pytest.raises(NotFound):
            crm.activities.get(activity)
        with pytest.raises(NotFound):
            crm.tasks.get(task)
        assert crm.activities.for_customer(south) == []
        assert crm.tasks.get(mine)["id"] == mine
        open_about = {t["customer_id"] for t in crm.tasks.open()}
        assert open_about == {*club.reached_ids(), None}
        planned = {t["customer_id"] for items in crm.tasks.next_actions().values() for t in items}
        assert planned == {*club.reached_ids(), None}
    assert crm.activities.get(activity)["customer_id"] == south


def test_json_of_a_report_keeps_the_personal_columns_as_null(club: Club) -> None:
    with club.crm.as_user(club.users["viewer"]):
        document = json.loads(club.crm.reports.render("fitness.members_at_risk", format="json"))
        rows = list(csv.DictReader(io.StringIO(club.crm.reports.render("fitness.members_at_risk", format="csv"))))
    assert document["rows"] and all(r["name"] is None and r["phone"] is None for r in document["rows"])
    assert rows and all(r["name"] == "" and r["phone"] == "" for r in rows)


def test_tasks_a_trigger_wrote_about_a_customer_show_a_viewer_no_personal_value(club: Club) -> None:
    crm = club.crm
    named = Trigger(
        "outputs.named_call",
        condition=lambda q: q.customer.c.id.is_not(None),
        task=TaskAction("Call {{ customer.name }}", reason="{{ customer.phone }} has not been called"),
    )
    crm.triggers.register(named)
    crm.triggers.run(names=["outputs.named_call"])
    with crm.as_user(club.users["manager"]):  # the titles do name the customers: the check can fail
        written = json.dumps(crm.tasks.search({"status": "open"}, limit=200).to_dict())
        assert {p.name for p in PEOPLE if reached(p)} <= set(leaked(written))
    with crm.as_user(club.users["viewer"]):
        shown = [
            crm.tasks.search({"status": "open"}, limit=200).to_dict(),
            crm.tasks.open(),
            crm.tasks.next_actions(),
            [crm.tasks.get(t["id"]) for t in crm.tasks.open() if t["customer_id"] is not None],
        ]
        assert shown[1] and leaked(json.dumps(shown, default=str)) == []
    with crm.as_user(club.users["analyst"]):
        for fmt in ("csv", "xlsx", "jsonl"):
            text, rows = exported(crm, "tasks", fmt)
            assert rows and leaked(text) == []


def test_a_plugin_table_about_customers_keeps_to_the_customers_a_user_reaches(club: Club) -> None:
    crm = club.crm
    table = crm.table("outputs_guardians")
    south = next(p for p in PEOPLE if p.branch == "south")
    north = next(p for p in PEOPLE if p.branch == "north")
    with crm.as_user(club.users["viewer"]):
        assert sorted(r["customer_id"] for r in table.list()) == club.reached_ids()
        with pytest.raises(AccessDenied, match="customers:write"):
            table.insert({"customer_id": club.ids[north.key], "relation": "aunt"})
    all_rows = table.list()  # the application reaches every row
    assert len(all_rows) == len(PEOPLE)
    south_id = next(r["id"] for r in all_rows if r["customer_id"] == club.ids[south.key])
    with crm.as_user(club.users["viewer"]), pytest.raises(NotFound):
        table.get(south_id)
    with crm.as_user(club.users["trainer"]):  # an operator of branch north
        with pytest.raises(NotFound):
            table.update(south_id, {"relation": "uncle"})
        with pytest.raises(ValidationError, match="no crm_customers row"):
            table.insert({"customer_id": club.ids[south.key], "relation": "aunt"})
        added = table.insert({"customer_id": club.ids[north.key], "relation": "aunt"})
    assert table.get(added["id"])["relation"] == "aunt"


def test_the_field_history_report_shows_a_manager_the_changes_of_reached_customers_only(club: Club) -> None:
    crm = club.crm
    north = next(p for p in PEOPLE if p.branch == "north")
    south = next(p for p in PEOPLE if p.branch == "south")
    for person in (north, south):
        crm.customers.update(club.ids[person.key], {"campaign": f"autumn-{person.key}"})
    with crm.as_user(club.users["manager"]):
        rows = crm.reports.run("crm.field_history", {"field": "campaign"}).rows
    assert [(r["customer_id"], r["old"], r["new"]) for r in rows] == [
        (club.ids[north.key], None, f"autumn-{north.key}")
    ]
    analyst = crm.access.system("dpo-analyst", ["reports:run", "audit:read", "customers:read"])
    with crm.access.using(analyst):
        names = crm.reports.run("crm.field_history", {"field": "name"}).rows
        text = crm.reports.render("crm.field_history", {"field": "name"}, format="csv")
    assert len(names) == len(PEOPLE) and all(r["new"] is None for r in names)  # there, but masked
    assert leaked(text) == []
