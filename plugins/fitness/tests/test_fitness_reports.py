"""The fitness reports on small hand-counted clubs: exact rows on SQLite and PostgreSQL, empty data, templates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from crmkit_fitness import fitness
from crmkit_fitness.models import GymClass, Membership, Trainer
from crmkit_fitness.reports import WEEKDAYS

from crmkit import CRM
from crmkit.errors import ValidationError
from crmkit.reports import FORMATS
from crmkit.triggers import Goal, Trigger
from crmkit.triggers.query import holdout_bucket

FITNESS_REPORTS = (
    "fitness.attendance",
    "fitness.members_at_risk",
    "fitness.renewal_rate",
    "fitness.trainer_load",
    "fitness.trigger_effectiveness",
)
AS_OF = dt.date(2026, 6, 15)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def checkin(customer_id: int, when: str, **data: Any) -> dict[str, Any]:
    return {"customer_id": customer_id, "kind": "checkin", "occurred_at": at(when), "data": {"club": "main", **data}}


def ingest(crm: CRM, rows: list[dict[str, Any]]) -> None:
    report = crm.activities.ingest(rows)
    assert report.ok, report.rejected


def test_the_plugin_registers_its_reports(club: CRM) -> None:
    assert {r.name for r in club.reports.all() if r.name.startswith("fitness.")} == set(FITNESS_REPORTS)
    assert all(club.reports.get(name).owner == "fitness" for name in FITNESS_REPORTS)


@pytest.mark.parametrize("name", FITNESS_REPORTS)
def test_empty_club_says_no_data_in_every_format(club: CRM, name: str) -> None:
    for fmt in FORMATS:
        text = club.reports.render(name, format=fmt)
        if fmt == "html":
            assert "No data for these parameters." in text
            assert "<svg" not in text  # no empty charts
        if fmt == "md":
            assert "No data for these parameters." in text


def test_bad_parameters_are_refused_with_every_problem(club: CRM) -> None:
    with pytest.raises(ValidationError) as info:
        club.reports.run("fitness.renewal_rate", {"since": "2026-06-01", "until": "2026-01-01", "days": "-1"})
    assert set(info.value.errors) == {"until", "days"}
    with pytest.raises(ValidationError):
        club.reports.run("fitness.members_at_risk", {"limit": "-5"})
    with pytest.raises(ValidationError):
        club.reports.run("fitness.attendance", {"since": "yesterday"})


# -- renewal rate ---------------------------------------------------------------------------------------


@pytest.fixture
def renewals(club: CRM) -> CRM:
    """Memberships of 30 days (``ends = starts + 29``); the comments give each end and how it counts."""
    f = fitness(club)
    plan = f.create_plan({"name": "Monthly", "duration_days": 30, "price": "50.00", "freeze_days": 10})["id"]
    people = {n: club.customers.create({"name": n})["id"] for n in ("Anna", "Ben", "Cleo", "Dan", "Eva", "Finn")}

    def sell(name: str, starts: str) -> int:
        return f.sell({"customer_id": people[name], "plan_id": plan, "starts_on": starts})["id"]

    sell("Anna", "2026-01-01")  # ends 01-30: renewed by the next one, the day after
    sell("Anna", "2026-01-31")  # ends 03-01: the next starts 03-16, 15 days after: not renewed within 14
    sell("Anna", "2026-03-16")  # ends 04-14: nothing after
    ben = sell("Ben", "2026-01-10")  # ends 02-08, frozen 5 days: 02-13, nothing after
    f.freeze(ben, start=dt.date(2026, 1, 20), days=5)
    sell("Cleo", "2026-01-20")  # ends 02-18: renewed 7 days after the end
    sell("Cleo", "2026-02-25")  # ends 03-26: nothing after
    sell("Dan", "2026-05-20")  # ends 06-18: still within the window on 06-15, pending
    sell("Eva", "2026-02-01")  # ends 03-02: renewed early by an overlapping one
    sell("Eva", "2026-02-20")  # ends 03-21: nothing after
    cancelled = sell("Finn", "2026-03-01")  # cancelled: not counted at all
    with club.session() as s:
        membership = s.get(Membership, cancelled)
        assert membership is not None
        membership.status = "cancelled"
        s.commit()
    return club


def test_renewal_rate_counts_renewals_within_the_window(renewals: CRM) -> None:
    params = {"since": "2026-01-01", "until": "2026-07-01", "as_of": AS_OF.isoformat()}
    rows = renewals.reports.run("fitness.renewal_rate", params).rows
    assert rows == [
        {"month": "2026-01", "ending": 1, "renewed": 1, "not_renewed": 0, "pending": 0, "renewal_pct": 100.0},
        {"month": "2026-02", "ending": 2, "renewed": 1, "not_renewed": 1, "pending": 0, "renewal_pct": 50.0},
        {"month": "2026-03", "ending": 4, "renewed": 1, "not_renewed": 3, "pending": 0, "renewal_pct": 25.0},
        {"month": "2026-04", "ending": 1, "renewed": 0, "not_renewed": 1, "pending": 0, "renewal_pct": 0.0},
        {"month": "2026-05", "ending": 0, "renewed": 0, "not_renewed": 0, "pending": 0, "renewal_pct": None},
        {"month": "2026-06", "ending": 1, "renewed": 0, "not_renewed": 0, "pending": 1, "renewal_pct": None},
    ]


def test_renewal_window_and_as_of_are_parameters(renewals: CRM) -> None:
    def march(**extra: str) -> dict[str, Any]:
        params = {"since": "2026-03-01", "until": "2026-04-01", "as_of": AS_OF.isoformat(), **extra}
        return renewals.reports.run("fitness.renewal_rate", params).rows[0]

    assert (march()["renewed"], march(days="15")["renewed"]) == (1, 2)  # Anna's return on day 15
    # seen from 03-16: Anna's end of 03-01 is decided (no renewal by 03-15), Eva's first one was renewed,
    # and the ends of 03-21 and 03-26 are still open
    early = march(as_of="2026-03-16")
    assert (early["renewed"], early["not_renewed"], early["pending"], early["renewal_pct"]) == (1, 1, 2, 50.0)
    assert march(as_of="2026-03-15")["pending"] == 3
    # as_of defaults to today: on 2026-08-01, Dan's window has closed
    june = renewals.reports.run(
        "fitness.renewal_rate", {"since": "2026-06-01", "until": "2026-07-01"}, now=at("2026-08-01 09:00:00")
    )
    assert june.params["as_of"] == dt.date(2026, 8, 1)
    assert (june.rows[0]["ending"], june.rows[0]["pending"], june.rows[0]["not_renewed"]) == (1, 0, 1)


# -- attendance -----------------------------------------------------------------------------------------


@pytest.fixture
def visits(club: CRM) -> CRM:
    anna = club.customers.create({"name": "Anna"})["id"]
    ben = club.customers.create({"name": "Ben"})["id"]
    ingest(
        club,
        [
            checkin(anna, "2026-06-01 07:10:00"),  # Monday
            checkin(ben, "2026-06-01 07:50:00"),
            checkin(anna, "2026-06-08 07:05:00"),  # the next Monday, same hour
            checkin(anna, "2026-06-01 18:30:00"),
            checkin(ben, "2026-06-03 09:00:00"),  # Wednesday, on the hour
            checkin(ben, "2026-06-07 23:59:59"),  # Sunday, the last second
            checkin(anna, "2026-06-02 12:00:00") | {"data": {"club": "riverside", "door": "south"}},  # Tuesday
            checkin(anna, "2026-05-31 23:59:59"),  # before the period
            checkin(anna, "2026-07-01 00:00:00"),  # the period's end is exclusive
            checkin(ben, "2026-06-01 07:30:00") | {"status": "cancelled"},  # did not happen
            {"customer_id": ben, "kind": "visit", "occurred_at": at("2026-06-01 07:30:00")},  # not a check-in
        ],
    )
    return club


def test_attendance_is_a_full_weekday_by_hour_grid(visits: CRM) -> None:
    rows = visits.reports.run("fitness.attendance", {"since": "2026-06-01", "until": "2026-07-01"}).rows
    assert len(rows) == 7 * 17  # every weekday, every hour from 07 to 23
    assert [r["weekday"] for r in rows[::17]] == list(WEEKDAYS)
    assert [r["hour"] for r in rows[:17]] == [f"{h:02d}:00" for h in range(7, 24)]
    busy = {(r["weekday"], r["hour"]): (r["checkins"], r["share_pct"]) for r in rows if r["checkins"]}
    assert busy == {
        ("Mon", "07:00"): (3, 42.86),
        ("Mon", "18:00"): (1, 14.29),
        ("Tue", "12:00"): (1, 14.29),
        ("Wed", "09:00"): (1, 14.29),
        ("Sun", "23:00"): (1, 14.29),
    }


def test_attendance_of_one_club(visits: CRM) -> None:
    params = {"since": "2026-06-01", "until": "2026-07-01", "club": "main"}
    rows = visits.reports.run("fitness.attendance", params).rows
    busy = {(r["weekday"], r["hour"]): r["checkins"] for r in rows if r["checkins"]}
    assert busy == {("Mon", "07:00"): 3, ("Mon", "18:00"): 1, ("Wed", "09:00"): 1, ("Sun", "23:00"): 1}
    assert rows[0]["share_pct"] == 50.0


def test_attendance_page_explains_the_heatmap(visits: CRM) -> None:
    html = visits.reports.render("fitness.attendance", {"since": "2026-06-01", "until": "2026-07-01"})
    assert "The darker the cell, the busier the club" in html
    assert "<strong>Mon 07:00</strong> with 3 check-ins" in html
    assert html.count('class="cell"') == 7 * 17  # the heatmap's cells
    assert html.index("The darker the cell") < html.index("<svg")  # the explanation comes first


# -- trainer load ---------------------------------------------------------------------------------------


def test_trainer_load_counts_class_checkins_and_pt_sessions(club: CRM) -> None:
    ulla = club.users.create({"name": "Ulla", "role": "operator"})["id"]
    vito = club.users.create({"name": "Vito", "role": "operator"})["id"]
    boss = club.users.create({"name": "Boss", "role": "manager"})["id"]
    with club.session() as s:
        trainers = [
            Trainer(name="Ulla", user_id=ulla, speciality="yoga"),
            Trainer(name="Vito", user_id=vito, speciality="hiit"),
            Trainer(name="Wanda", speciality="pilates"),  # no staff user: no PT sessions to find
            Trainer(name="Xavi", speciality="boxing"),  # nothing at all
        ]
        s.add_all(trainers)
        s.flush()
        u, v, w, _ = (t.id for t in trainers)
        classes = [
            GymClass(name="Yoga", trainer_id=u, club="main", weekday=0, starts_at=dt.time(7)),
            GymClass(name="Yoga", trainer_id=u, club="main", weekday=2, starts_at=dt.time(7)),
            GymClass(name="HIIT", trainer_id=v, club="main", weekday=0, starts_at=dt.time(18)),
            GymClass(name="Pilates", trainer_id=w, club="main", weekday=4, starts_at=dt.time(12)),
        ]
        s.add_all(classes)
        s.commit()
        yoga, yoga_wed, hiit, pilates = (k.id for k in classes)
    anna, ben, cleo = (club.customers.create({"name": n})["id"] for n in ("Anna", "Ben", "Cleo"))

    def pt(customer: int, owner: int, when: str, **extra: Any) -> dict[str, Any]:
        return {"customer_id": customer, "kind": "pt_session", "owner_id": owner, "occurred_at": at(when), **extra}

    ingest(
        club,
        [
            checkin(anna, "2026-06-01 06:55:00", class_id=yoga),
            checkin(anna, "2026-06-03 06:55:00", class_id=yoga_wed),
            checkin(ben, "2026-06-01 06:58:00", class_id=yoga),
            checkin(anna, "2026-06-01 17:55:00", class_id=hiit),
            checkin(cleo, "2026-06-05 11:58:00", class_id=pilates),
            checkin(ben, "2026-05-25 06:58:00", class_id=yoga),  # before the period
            checkin(cleo, "2026-06-02 10:00:00"),  # no class
            pt(anna, ulla, "2026-06-02 10:00:00"),
            pt(anna, ulla, "2026-06-09 10:00:00"),
            pt(cleo, ulla, "2026-06-10 10:00:00"),
            pt(cleo, ulla, "2026-06-11 10:00:00", status="cancelled"),  # did not happen
            pt(ben, boss, "2026-06-12 10:00:00"),  # held by someone who is not a trainer
        ],
    )
    rows = club.reports.run("fitness.trainer_load", {"since": "2026-06-01", "until": "2026-07-01"}).rows
    assert [(r["trainer"], r["classes"], r["class_checkins"], r["pt_sessions"], r["members"]) for r in rows] == [
        ("Ulla", 2, 3, 3, 3),  # Anna and Ben in yoga, Anna and Cleo in PT
        ("Vito", 1, 1, 0, 1),
        ("Wanda", 1, 1, 0, 1),
        ("Xavi", 0, 0, 0, 0),
    ]
    assert rows[0]["speciality"] == "yoga"
    may = club.reports.run("fitness.trainer_load", {"since": "2026-05-01", "until": "2026-06-01"}).rows
    assert [(r["trainer"], r["class_checkins"], r["members"]) for r in may] == [
        ("Ulla", 1, 1),
        ("Vito", 0, 0),
        ("Wanda", 0, 0),
        ("Xavi", 0, 0),
    ]


# -- members at risk ------------------------------------------------------------------------------------


@pytest.fixture
def absent(club: CRM) -> dict[str, int]:
    """Members as of 2026-06-15 with 14 days as the limit; see each line for why they are (not) listed."""
    f = fitness(club)
    monthly8 = f.create_plan({"name": "Monthly 8", "duration_days": 30, "price": "49.00", "sessions": 8})["id"]
    unlimited = f.create_plan({"name": "Unlimited", "duration_days": 30, "price": "79.00"})["id"]
    maria = club.users.create({"name": "Maria", "role": "manager"})["id"]
    omar = club.users.create({"name": "Omar", "role": "manager"})["id"]

    def member(name: str, stage: str = "adaptation", owner: int | None = maria, **extra: Any) -> int:
        return club.customers.create({"name": name, "stage": stage, "owner_id": owner, "phone": extra.get("phone")})[
            "id"
        ]

    ids = {
        "petra": member("Petra", phone="+1 646 555 0101"),  # at risk by stage, came yesterday
        "quinn": member("Quinn", stage="lead"),  # last visit exactly 14 days ago, 8 sessions left
        "rita": member("Rita"),  # last visit 13 days ago: fine
        "sam": member("Sam", owner=None),  # never came: first on the list
        "tom": member("Tom", stage="lead"),  # never came, but not a member
        "uma": member("Uma", owner=omar),  # lapsed: not a member any more
        "vic": member("Vic", stage="lead", owner=omar),  # a visit after as_of does not count
        "zed": member("<script>alert(1)</script>"),  # no visit for 20 days; the name must stay text
    }
    club.lifecycle.move(ids["petra"], "at_risk", cause="stopped coming")
    club.lifecycle.move(ids["uma"], "lapsed", cause="gone")
    f.sell({"customer_id": ids["quinn"], "plan_id": monthly8, "starts_on": "2026-06-01"})
    f.sell({"customer_id": ids["vic"], "plan_id": unlimited, "starts_on": "2026-04-01"})
    ingest(
        club,
        [
            checkin(ids["petra"], "2026-06-14 18:00:00"),
            checkin(ids["quinn"], "2026-05-20 18:00:00"),
            checkin(ids["quinn"], "2026-06-01 23:30:00"),
            checkin(ids["rita"], "2026-06-02 07:00:00"),
            checkin(ids["uma"], "2026-01-02 07:00:00"),
            checkin(ids["vic"], "2026-05-01 07:00:00"),
            checkin(ids["vic"], "2026-06-16 07:00:00"),
            checkin(ids["zed"], "2026-05-26 07:00:00"),
        ],
    )
    return ids


def call_list(crm: CRM, **params: Any) -> list[tuple[Any, ...]]:
    rows = crm.reports.run("fitness.members_at_risk", {"as_of": AS_OF.isoformat(), **params}).rows
    return [
        (r["name"], r["stage"], r["last_visit"], r["days_since"], r["sessions_left"], r["membership_end"], r["owner"])
        for r in rows
    ]


def test_members_at_risk_is_the_call_list(club: CRM, absent: dict[str, int]) -> None:
    d = dt.date
    assert call_list(club) == [
        ("Sam", "adaptation", None, None, None, None, "(unassigned)"),
        ("Vic", "adaptation", d(2026, 5, 1), 45, None, d(2026, 4, 30), "Omar"),
        ("<script>alert(1)</script>", "adaptation", d(2026, 5, 26), 20, None, None, "Maria"),
        # 8 sessions, and the check-in of 06-01 (her first day) used one; the one of 05-20 was before it
        ("Quinn", "adaptation", d(2026, 6, 1), 14, 7, d(2026, 6, 30), "Maria"),
        ("Petra", "at_risk", d(2026, 6, 14), 1, None, None, "Maria"),
    ]
    rows = club.reports.run("fitness.members_at_risk", {"as_of": AS_OF.isoformat()}).rows
    assert rows[-1]["phone"] == "+1 646 555 0101"


def test_members_at_risk_parameters(club: CRM, absent: dict[str, int]) -> None:
    assert [r[0] for r in call_list(club, days=21)] == ["Sam", "Vic", "Petra"]
    assert [r[0] for r in call_list(club, limit=2)] == ["Sam", "Vic"]
    maria = next(u["id"] for u in club.users.list() if u["name"] == "Maria")
    assert [r[0] for r in call_list(club, owner_id=maria)] == ["<script>alert(1)</script>", "Quinn", "Petra"]
    # a day later Rita is 14 days away too, and Vic's visit of 06-16 makes him fine
    later = call_list(club, as_of="2026-06-16")
    assert [r[0] for r in later] == ["Sam", "<script>alert(1)</script>", "Quinn", "Rita", "Petra"]


def test_members_at_risk_page_is_a_call_list_by_manager(club: CRM, absent: dict[str, int]) -> None:
    html = club.reports.render("fitness.members_at_risk", {"as_of": AS_OF.isoformat()})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert html.index("(unassigned) · 1 call") < html.index("Maria · 3 calls") < html.index("Omar · 1 call")
    assert "Last visit Jun 1, 2026, 14 days ago." in html
    assert "Membership ends Jun 30, 2026, 7 sessions left." in html
    assert "Membership ended Apr 30, 2026." in html
    assert "No check-in yet." in html
    assert html.count('type="checkbox"') == 5
    # every phone on the list is a tel: link to its E.164 form, shown in one national format
    import re

    links = re.findall(r'<a href="tel:(\+\d+)">([^<]+)</a>', html)
    assert links and all(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", shown) for _, shown in links), links


# -- trigger effectiveness ------------------------------------------------------------------------------


def test_trigger_effectiveness_of_the_fitness_triggers(club_factory: Callable[..., CRM]) -> None:
    club = club_factory(holdout=0.3)
    club.triggers.register(
        Trigger("gym.everyone", condition=lambda q: q.customer.c.id > 0, goal=Goal(("checkin",)))
    )  # not a fitness trigger: left out
    ids = [club.customers.create({"name": f"M{i}", "birthday": "1990-06-17"})["id"] for i in range(4)]
    ids.append(club.customers.create({"name": "March", "birthday": "1990-03-03"})["id"])
    ids += [club.customers.create({"name": f"M{i}", "birthday": "1990-06-17"})["id"] for i in range(4, 6)]
    assert ids == [1, 2, 3, 4, 5, 6, 7]  # the buckets below are those of these ids
    held = {i for i in ids if holdout_bucket("fitness.birthday", i) < 3000}
    assert held == {1, 2, 5}
    club.triggers.run(at("2026-03-01 00:00:00"), names=["fitness.birthday"])  # customer 5, held out
    club.triggers.run(at("2026-06-15 00:00:00"), names=["fitness.birthday", "gym.everyone"])
    ingest(
        club,
        [
            checkin(3, "2026-06-20 10:00:00"),  # contacted, converted
            checkin(4, "2026-07-06 00:00:00"),  # contacted, converted on the window's last moment
            checkin(6, "2026-07-06 00:00:01"),  # contacted, too late
            checkin(2, "2026-06-16 10:00:00"),  # held out, came anyway
            checkin(5, "2026-03-05 10:00:00"),  # held out in March, came
        ],
    )
    june = club.reports.run("fitness.trigger_effectiveness", {"since": "2026-06-01", "until": "2026-07-01"}).rows
    assert june == [
        {
            "trigger": "fitness.birthday",
            "fired": 4,
            "converted": 2,
            "conversion_pct": 50.0,
            "held_out": 2,
            "held_out_converted": 1,
            "held_out_pct": 50.0,
            "uplift_pp": 0.0,
            # Newcombe's interval of 2/4 - 1/2, and six firings are far too few for a verdict
            "uplift_low_pp": -53.56,
            "uplift_high_pp": 53.56,
            "verdict": "not enough data",
            "action": "all",
        }
    ]
    year = club.reports.run("fitness.trigger_effectiveness", {"since": "2026-01-01", "until": "2027-01-01"}).rows
    assert [(r["fired"], r["held_out"], r["held_out_converted"], r["uplift_pp"]) for r in year] == [(4, 3, 2, -16.67)]
    html = club.reports.render("fitness.trigger_effectiveness", {"since": "2026-06-01", "until": "2026-07-01"})
    assert "gym.everyone" not in html and 'class="chart chart-bar"' in html
