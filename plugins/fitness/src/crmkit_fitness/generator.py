"""A deterministic generator of a fitness club's year: staff, plans, classes, members and their history.

``generate(crm, members=2000, seed=42, today=...)`` fills an empty club database with a year of history that
ends on the day before ``today``: staff (managers who own members, trainers), plans, a weekly class
timetable, and members who arrive over the year as web leads, trials or walk-in buyers, or were already
members when the year began. Each member has a habit (preferred weekdays and hours, a weekly frequency that
stays, fades or stops), buys and renews memberships (renewal gets less likely the less they came), freezes
some, books personal training, and checks in at the turnstile. Staff call leads and trials, and members who
stopped coming.

The stage history is a replay of the plugin's stage triggers (``fitness.stage_*``) as if they had run every
night of the year with the club's :class:`~crmkit_fitness.config.FitnessConfig`, plus the moves staff and
sales make, so each customer's history ends at its current stage and running the triggers for ``today``
carries on from there.

Same seed, same ``today``, same size: the same rows. Everything random comes from ``random.Random`` seeded
from ``seed`` (one stream for the staff and timetable, one per member, so a member's story does not depend
on the batch size). The only wall-clock values are the ones the core writes itself: ``created_at`` of
activities (the time :meth:`crm.activities.ingest <crmkit.activities.Activities.ingest>` inserted them).

Members are simulated and written in batches, each in one transaction: customers, their plugin fields,
their stage history, memberships and personal-training packages go in with SQLAlchemy Core multi-row
inserts, and every activity (check-ins, purchases, PT sessions, calls) through the core's set-based
``crm.activities.ingest``. Memory stays flat whatever ``members`` is. Generated history is not a stream of
live events: the ``crmkit_customer_created`` and ``crmkit_stage_changed`` hooks are not called.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection, Table, func, insert, select

from crmkit.db import Customer, StageHistory, User
from crmkit_fitness.config import FitnessConfig, config_of
from crmkit_fitness.models import GymClass, Membership, Plan, PTPackage, Trainer
from crmkit_fitness.plugin import GOALS
from crmkit_fitness.service import JOINING, fitness

if TYPE_CHECKING:
    from crmkit import CRM

#: ``progress(step, done, total)``: called after each step with the members written so far.
Progress = Callable[[str, int, int], None]

HISTORY_DAYS = 365
BATCH_MEMBERS = 500
#: Check-ins per ``INSERT`` batch of the core's ingest; large batches mean few round trips.
INGEST_BATCH = 20_000

CLUBS = ("downtown", "riverside", "northgate", "harbour", "westpark", "eastside")
DOORS = ("main", "main", "main", "side")
FIRST_NAMES = (
    "Anna", "Ben", "Chen", "Dana", "Elena", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kai", "Lena", "Mateo",
    "Nina", "Omar", "Paula", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
    "Aisha", "Bruno", "Clara", "David", "Emma", "Farah", "Gabriel", "Hana", "Ivan", "Julia", "Karim", "Laura",
    "Marco", "Noah", "Olivia", "Pedro", "Rania", "Sofia", "Tom", "Lucia", "Viktor", "Mia", "Leon", "Amara",
    "Diego", "Eva", "Finn", "Giulia", "Hannah", "Ibrahim", "Jana", "Kofi", "Lina", "Max", "Nora", "Oscar",
    "Priya", "Rafael", "Sara", "Theo", "Alice", "Elif", "Ravi", "Mei", "Sven", "Ayla", "Jakob", "Maya", "Luca",
    "Ada", "Nikolai", "Fatima", "Emil", "Chloe", "Daniel", "Helena", "Tariq", "Ingrid", "Marta", "Liam",
)  # fmt: skip
LAST_NAMES = (
    "Berg", "Ortiz", "Wu", "Kim", "Novak", "Schmidt", "Rossi", "Dubois", "Silva", "Jensen", "Tanaka", "Nowak",
    "Garcia", "Muller", "Khan", "Ivanova", "Lopez", "Smith", "Brown", "Fischer", "Moreau", "Costa", "Larsen",
    "Sato", "Kowalski", "Martin", "Weber", "Romano", "Ali", "Petrov", "Hansen", "Nguyen", "Okafor", "Mendes",
    "Haddad", "Yilmaz", "Andersen", "Fernandez", "Wagner", "Ricci", "Laurent", "Santos", "Nielsen", "Ito",
    "Zielinski", "Johnson", "Taylor", "Becker", "Greco", "Lefebvre", "Pereira", "Eriksson", "Chen", "Mensah",
    "Ahmed", "Popescu", "Walker", "Hoffmann", "Marino", "Girard", "Almeida", "Lindqvist", "Park", "Nakamura",
    "Horvat", "Clarke", "Schulz", "Conti", "Bernard", "Rocha", "Olsen", "Lee", "Adeyemi", "Hussain", "Jovanovic",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
SOURCES = ("walk_in", "website", "instagram", "google", "referral", "facebook", "corporate")
SOURCE_WEIGHTS = (22, 20, 18, 14, 14, 7, 5)
INTERESTS = ("yoga", "spinning", "strength", "swimming", "boxing", "pilates", "crossfit", "running")
GOAL_WEIGHTS = (30, 25, 15, 18, 4, 8)
SPECIALITIES = ("strength", "yoga", "cycling", "hiit", "pilates", "boxing")


@attrs.frozen
class PlanDef:
    """A plan the generator sells: how long, how much, how many sessions (None = unlimited), freeze days."""

    name: str
    duration_days: int
    price: str
    sessions: int | None
    freeze_days: int
    weight: int


PLANS = (
    PlanDef("Monthly 8", 30, "49.00", 8, 7, 24),
    PlanDef("Monthly unlimited", 30, "79.00", None, 7, 38),
    PlanDef("Quarterly unlimited", 90, "199.00", None, 14, 18),
    PlanDef("Annual unlimited", 365, "690.00", None, 30, 14),
)
PT_PACKAGE = ("Personal training: 10 sessions", 10, Decimal("450.00"), 90)

#: The weekly timetable of every club: weekday (0 = Monday) -> (hour, minute, class, minutes, speciality).
TIMETABLE: dict[int, tuple[tuple[int, int, str, int, str], ...]] = {
    **{
        day: (
            (7, 0, "Morning HIIT", 45, "hiit"),
            (12, 15, "Lunch Pilates", 45, "pilates"),
            (18, 0, "Spinning" if day % 2 == 0 else "Body Pump", 45, "cycling" if day % 2 == 0 else "strength"),
            (19, 15, "Yoga Flow", 60, "yoga"),
        )
        for day in range(5)
    },
    5: ((9, 30, "Boxing Basics", 60, "boxing"), (11, 0, "Weekend Yoga", 75, "yoga")),
    6: ((10, 0, "Spinning", 45, "cycling"), (11, 15, "Stretch & Mobility", 45, "pilates")),
}

#: Relative join rates by month: the January resolutions, the September return, the summer lull.
JOIN_SEASON = (1.6, 1.2, 1.1, 1.0, 1.0, 0.8, 0.6, 0.7, 1.3, 1.1, 0.9, 0.7)
#: Relative visit rates by month.
VISIT_SEASON = (1.12, 1.08, 1.04, 1.0, 0.97, 0.92, 0.84, 0.84, 1.0, 1.02, 1.0, 0.9)
#: Club-wide weekday pattern (Monday busiest, Sunday quietest), before personal preferences.
WEEKDAY_PATTERN = (1.3, 1.2, 1.15, 1.05, 0.8, 0.8, 0.6)


@attrs.frozen
class GeneratedClub:
    """What :func:`generate` wrote: counts of every kind of row, and the members per stage."""

    seed: int
    today: dt.date
    members: int
    managers: int
    trainers: int
    plans: int
    classes: int
    memberships: int
    freezes: int
    pt_packages: int
    checkins: int
    pt_sessions: int
    purchases: int
    calls: int
    stage_moves: int
    stages: dict[str, int] = attrs.field(hash=False)


# -- the club: staff, plans, timetable ------------------------------------------------------------------


@attrs.frozen
class _PlanRow:
    id: int
    name: str
    duration: int
    price: Decimal
    currency: str
    sessions: int | None
    freeze_days: int


@attrs.frozen
class _TrainerRow:
    id: int
    user_id: int
    club: str
    speciality: str


@attrs.define
class _Club:
    """Everything a member's simulation needs to know about the club, and the rules it replays."""

    config: FitnessConfig
    today: int  # ordinal of ``today``; history covers the days before it
    start: int  # ordinal of the first day of the history
    clubs: tuple[str, ...]
    managers: dict[str, list[int]]
    trainers: dict[str, list[_TrainerRow]]
    plans: list[_PlanRow]
    plan_weights: list[int]
    classes: dict[tuple[str, int], list[tuple[int, int]]]  # (club, weekday) -> [(minute of day, class id)]
    stage_lifecycle: dict[str, str]
    midnights: list[dt.datetime]  # UTC midnight of every day of the history
    season: list[float]  # the visit season factor of every day of the history
    join_days: list[int]  # days a member may join on, weighted by season through repetition


def _users(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    table: Table = User.__table__
    return _insert_returning(conn, table, rows)


def _insert_returning(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert ``rows`` in one multi-row statement batch and return their new ids, in the order of ``rows``."""
    if not rows:
        return []
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in conn.execute(statement, list(rows))]


def _setup(crm: CRM, rng: random.Random, members: int, today: dt.date) -> _Club:
    """Staff, plans, trainers and the class timetable: a handful of rows, so the public API where there is one."""
    config = config_of(crm)
    start = today.toordinal() - HISTORY_DAYS
    opened = dt.datetime.combine(dt.date.fromordinal(start), dt.time(8), dt.UTC)
    n_clubs = max(1, min(len(CLUBS), round(members / 1000)))
    clubs = CLUBS[:n_clubs]
    per_club = members / n_clubs
    used_emails: set[str] = set()

    def staff_email(first: str, last: str) -> str:
        base = f"{first}.{last}".lower()
        email, n = f"{base}@staff.example.com", 1
        while email in used_emails:
            n += 1
            email = f"{base}{n}@staff.example.com"
        used_emails.add(email)
        return email

    def person() -> tuple[str, str]:
        return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)

    managers: dict[str, list[int]] = {}
    trainers: dict[str, list[_TrainerRow]] = {}
    classes: dict[tuple[str, int], list[tuple[int, int]]] = {}
    with crm.transaction() as tx:
        conn = tx.session.connection()
        for club in clubs:
            n_managers = max(1, min(12, math.ceil(per_club / 350)))
            n_trainers = max(2, min(15, round(per_club / 160)))
            rows = []
            for _ in range(n_managers):
                first, last = person()
                rows.append(
                    {"name": f"{first} {last}", "email": staff_email(first, last), "role": "manager"}
                    | {"branch": club, "active": True, "created_at": opened}
                )
            managers[club] = _users(conn, rows)
            people = [person() for _ in range(n_trainers)]
            user_ids = _users(
                conn,
                [
                    {"name": f"{f} {la}", "email": staff_email(f, la), "role": "operator"}
                    | {"branch": club, "active": True, "created_at": opened}
                    for f, la in people
                ],
            )
            specialities = [SPECIALITIES[i % len(SPECIALITIES)] for i in range(n_trainers)]
            trainer_ids = _insert_returning(
                conn,
                Trainer.__table__,
                [
                    {"name": f"{f} {la}", "user_id": uid, "speciality": spec}
                    for (f, la), uid, spec in zip(people, user_ids, specialities, strict=True)
                ],
            )
            trainers[club] = [
                _TrainerRow(tid, uid, club, spec)
                for tid, uid, spec in zip(trainer_ids, user_ids, specialities, strict=True)
            ]
            slots: list[dict[str, Any]] = []
            for weekday, day_classes in TIMETABLE.items():
                for hour, minute, name, minutes, speciality in day_classes:
                    fit = [t for t in trainers[club] if t.speciality == speciality] or trainers[club]
                    slots.append(
                        {
                            "name": name,
                            "trainer_id": rng.choice(fit).id,
                            "club": club,
                            "weekday": weekday,
                            "starts_at": dt.time(hour, minute),
                            "duration_min": minutes,
                            "capacity": 20,
                        }
                    )
            class_ids = _insert_returning(conn, GymClass.__table__, slots)
            for slot, class_id in zip(slots, class_ids, strict=True):
                minute_of_day = slot["starts_at"].hour * 60 + slot["starts_at"].minute
                classes.setdefault((club, slot["weekday"]), []).append((minute_of_day, class_id))
        # the plans go through the service, which validates them like a club's own would be
        service = fitness(crm)
        plan_ids = [
            service.create_plan(
                {
                    "name": p.name,
                    "duration_days": p.duration_days,
                    "price": p.price,
                    "sessions": p.sessions,
                    "freeze_days": p.freeze_days,
                },
                tx=tx,
            )["id"]
            for p in PLANS
        ]
        plans = [
            _PlanRow(pid, p.name, p.duration_days, Decimal(p.price), "EUR", p.sessions, p.freeze_days)
            for pid, p in zip(plan_ids, PLANS, strict=True)
        ]
    join_days = []
    for day in range(start + 1, today.toordinal()):
        month = dt.date.fromordinal(day).month
        join_days.extend([day] * round(JOIN_SEASON[month - 1] * 10))
    return _Club(
        config=config,
        today=today.toordinal(),
        start=start,
        clubs=clubs,
        managers=managers,
        trainers=trainers,
        plans=plans,
        plan_weights=[p.weight for p in PLANS],
        classes=classes,
        stage_lifecycle={name: spec.lifecycle for name, spec in crm.lifecycle.stages.items()},
        midnights=[dt.datetime.combine(dt.date.fromordinal(start + i), dt.time(), dt.UTC) for i in range(HISTORY_DAYS)],
        season=[VISIT_SEASON[dt.date.fromordinal(start + i).month - 1] for i in range(HISTORY_DAYS)],
        join_days=join_days,
    )


# -- one member's year ---------------------------------------------------------------------------------


@attrs.define(slots=True)
class _Habit:
    """How a member trains: how often at their best, on which days, at what time, and how that changes."""

    per_week: float
    weekdays: tuple[float, ...]  # per weekday, mean 1
    weekday_minute: float  # preferred time on weekdays, minutes after midnight
    weekend_minute: float
    spread: float  # minutes of jitter around the preferred time
    class_affinity: float  # chance a visit near a class is that class
    style: str  # steady, fader or dropout
    change_after: int  # days after joining when fading or dropping out starts
    half_life: float  # days for a fader's frequency to halve

    def factor(self, days_in: int) -> float:
        """Share of ``per_week`` left ``days_in`` days after the member (re)joined."""
        if self.style == "steady" or days_in < self.change_after:
            return 1.0
        if self.style == "dropout":
            return 0.0
        return 0.5 ** ((days_in - self.change_after) / self.half_life)


def _habit(rng: random.Random, base: float) -> _Habit:
    preferred = rng.sample(range(7), rng.choice((2, 2, 3, 3, 4)))
    raw = [WEEKDAY_PATTERN[d] * (2.6 if d in preferred else 0.6) for d in range(7)]
    mean = sum(raw) / 7
    # early birds, the flexible mid-morning crowd, lunch breaks, students, after work, late owls
    centre = rng.choices((7.25, 9.5, 12.5, 15.5, 18.25, 20.25), weights=(20, 9, 12, 7, 42, 10))[0] * 60
    style = rng.choices(("steady", "fader", "dropout"), weights=(55, 33, 12))[0]
    return _Habit(
        per_week=min(6.0, max(0.6, rng.lognormvariate(math.log(3.6), 0.4))) * base,
        weekdays=tuple(r / mean for r in raw),
        weekday_minute=centre + rng.gauss(0, 30),
        weekend_minute=10 * 60 + 30 + rng.gauss(0, 60),
        spread=rng.uniform(15, 60),
        class_affinity=0.0 if rng.random() < 0.4 else rng.uniform(0.2, 0.8),
        style=style,
        change_after=rng.randint(14, 60) if style == "dropout" else rng.randint(20, 240),
        half_life=rng.uniform(14, 60),
    )


@attrs.define(slots=True)
class _Membership:
    plan: _PlanRow
    starts: int
    ends: int
    bought_at: dt.datetime
    owner: int
    sessions_left: int | None
    frozen_from: int | None = None
    frozen_until: int | None = None
    freeze_days: int = 0
    decided: bool = False
    id: int = 0


@attrs.define(slots=True)
class _Package:
    trainer: _TrainerRow
    bought_at: dt.datetime
    purchased: int
    expires: int
    left: int
    id: int = 0


@attrs.define(slots=True)
class _Journey:
    """One member: the customer row, and everything that happened to them, oldest first."""

    customer: dict[str, Any]
    fields: dict[str, Any]
    moves: list[tuple[dt.datetime, str | None, str, str, int | None]] = attrs.field(factory=list)
    memberships: list[_Membership] = attrs.field(factory=list)
    packages: list[_Package] = attrs.field(factory=list)
    visits: list[tuple[dt.datetime, str, str, int | None, _Package | None]] = attrs.field(factory=list)
    calls: list[tuple[dt.datetime, int, str, str]] = attrs.field(factory=list)


class _Names:
    """Unique, realistic emails; phone and card numbers spread over their ranges yet unique per member."""

    def __init__(self) -> None:
        self._emails: dict[str, int] = {}

    def email(self, first: str, last: str, domain: str) -> str:
        base = f"{first}.{last}".lower()
        n = self._emails.get(f"{base}@{domain}", 0) + 1
        self._emails[f"{base}@{domain}"] = n
        return f"{base}@{domain}" if n == 1 else f"{base}{n}@{domain}"

    @staticmethod
    def phone(index: int, style: int) -> tuple[str, str]:
        """A US number (the CRM's default region) and its E.164 form; a bijection keeps them unique."""
        x = (index * 2_750_159) % 8_000_000
        area = ("646", "917", "347", "718")[index // 8_000_000 % 4]
        exchange, line = 200 + x // 10_000, x % 10_000
        text = (f"+1 {area}-{exchange}-{line:04d}", f"({area}) {exchange}-{line:04d}", f"{area}.{exchange}.{line:04d}")
        return text[style % 3], f"+1{area}{exchange}{line:04d}"

    @staticmethod
    def card(index: int) -> str:
        return str(1_000_000_000 + (index * 48_271) % 1_000_000_000)


class _Simulation:
    """Plays one member's year day by day: sales, visits, renewals, freezes, calls, and the nightly stage
    triggers replayed with the club's configuration."""

    def __init__(self, club: _Club, names: _Names, seed: int, visit_rate: float) -> None:
        self.club = club
        self.names = names
        self.seed = seed
        self.visit_rate = visit_rate
        c = club.config
        self.active_stages = frozenset(s for s, lc in club.stage_lifecycle.items() if lc == "active")
        self.adapt_days, self.adapt_visits = c.adaptation_days, c.adaptation_visits
        self.adapt_absent, self.active_absent, self.lapsed_days = (
            c.adaptation_absent_days,
            c.active_absent_days,
            c.lapsed_days,
        )

    def at(self, day: int, minute: float) -> dt.datetime:
        """The moment ``minute`` minutes into ``day`` (an ordinal), UTC."""
        offset = day - self.club.start
        # an imported member's membership may have started before the history: not in the cache
        midnight = (
            self.club.midnights[offset]
            if 0 <= offset < len(self.club.midnights)
            else dt.datetime.combine(dt.date.fromordinal(day), dt.time(), dt.UTC)
        )
        return midnight + dt.timedelta(seconds=round(minute * 60))

    @staticmethod
    def _day_of(moment: dt.datetime) -> float:
        """``moment`` as a day ordinal with the time as a fraction: comparable with midnights (whole days)."""
        midnight = dt.datetime.combine(moment.date(), dt.time(), dt.UTC)
        return moment.toordinal() + (moment - midnight).total_seconds() / 86400

    def member(self, index: int) -> _Journey:
        """Play member ``index``'s year; their own random stream makes it independent of the batching."""
        club = self.club
        rng = random.Random(self.seed * 1_000_003 + index)
        home = club.clubs[rng.randrange(len(club.clubs))]
        owner = rng.choice(club.managers[home])
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        path = rng.choices(("existing", "lead", "trial", "direct"), weights=(52, 11, 24, 13))[0]
        created_day = club.start if path == "existing" else rng.choice(club.join_days)
        created_minute = rng.uniform(8 * 60, 9 * 60) if path == "existing" else rng.uniform(9 * 60, 20 * 60)
        created_at = self.at(created_day, created_minute)
        source = rng.choices(SOURCES, weights=SOURCE_WEIGHTS)[0]
        joined = dt.date.fromordinal(created_day)
        campaign = None
        if source in ("instagram", "facebook", "google"):
            seasonal = {1: "new-year", 5: "summer-body", 6: "summer-body", 9: "back-to-gym"}.get(joined.month)
            campaign = f"{seasonal}-{joined.year}" if seasonal else "always-on"
        elif source == "referral":
            campaign = "bring-a-friend"
        age = min(72, max(16, round(rng.gauss(34, 10))))
        birthday = dt.date(dt.date.fromordinal(club.today).year - age, 1, 1) + dt.timedelta(days=rng.randrange(365))
        email = self.names.email(first, last, rng.choice(EMAIL_DOMAINS)) if rng.random() < 0.9 else None
        phone, phone_e164 = self.names.phone(index, rng.randrange(3)) if rng.random() < 0.94 else (None, None)
        journey = _Journey(
            customer={
                "name": f"{first} {last}",
                "email": email,
                "email_normalized": email,
                "phone": phone,
                "phone_normalized": phone_e164,
                "birthday": birthday,
                "source": source,
                "campaign": campaign,
                "owner_id": owner,
                "branch": home,
                "created_at": created_at,
                "extra": {},
            },
            fields={
                "card_number": self.names.card(index),
                "goal": rng.choices(GOALS, weights=GOAL_WEIGHTS)[0],
                "interests": ", ".join(sorted(rng.sample(INTERESTS, rng.randint(1, 3)))),
                "trial_ends_on": None,
                "home_club": home,
            },
        )
        self._live(journey, rng, path, created_day, created_at, owner, home)
        last_move = journey.moves[-1]
        journey.customer |= {
            "stage": last_move[2],
            "lifecycle": club.stage_lifecycle[last_move[2]],
            "stage_changed_at": last_move[0],
            "updated_at": max(last_move[0], created_at),
        }
        return journey

    def _live(
        self, j: _Journey, rng: random.Random, path: str, created: int, created_at: dt.datetime, owner: int, home: str
    ) -> None:
        club = self.club
        today = club.today
        first_stage = {"existing": "active", "trial": "trial"}.get(path, "lead")
        stage = first_stage
        changed = self._day_of(created_at)  # when the stage last changed, for "in the stage since"
        j.moves.append((created_at, None, stage, "created", None))
        habit = _habit(rng, self.visit_rate)
        engaged_since = created
        visit_days: list[int] = []
        purchase_day: int | None = None
        purchase_win_back = False
        trial: tuple[int, int] | None = None
        lost_day: int | None = None  # when staff close a lead or a trial that went nowhere
        trial_day: int | None = None  # when a lead books a trial
        lost_cause = ""
        pt_day: int | None = None

        def move(target: str, cause: str, actor: int | None, moment: dt.datetime) -> None:
            nonlocal stage, changed
            j.moves.append((moment, stage, target, cause, actor))
            stage, changed = target, self._day_of(moment)

        if path == "existing":
            plan = rng.choices(club.plans, weights=club.plan_weights)[0]
            starts = created - rng.randrange(plan.duration)
            self._buy(j, rng, plan, starts, self.at(starts, rng.uniform(9 * 60, 20 * 60)), owner)
            pt_day = self._maybe_pt(rng, starts)
        elif path == "direct":
            purchase_day = created
        elif path == "trial":
            trial = (created, created + 6)
        else:
            contacted = rng.random() < 0.8
            if contacted:
                call_at = created_at + dt.timedelta(hours=rng.choice((0.1, 0.5, 1, 2, 3, 5, 8, 20, 30)))
                books = rng.random() < 0.5
                j.calls.append((call_at, owner, "First call", "booked a trial" if books else "not now"))
                if books:
                    trial_day = created + rng.randint(1, 10)
            if trial_day is None:
                lost_day, lost_cause = created + rng.randint(30, 75), "no reply to follow-ups"
        if trial is not None:
            j.fields["trial_ends_on"] = dt.date.fromordinal(trial[1])
        convert = rng.random() < 0.6

        day = created
        while day < today:
            # -- the nightly stage triggers, as of midnight (visits before today only) --------------------
            if day > created and stage in self.active_stages:
                stage_before = stage
                self._nightly(j, day, stage, changed, visit_days, move)
                if stage != stage_before and stage == "at_risk" and rng.random() < 0.45:
                    call_day = day + rng.randint(1, 3)
                    if call_day < today:
                        result = rng.choice(("left a message", "will come back next week", "busy at work"))
                        j.calls.append((self.at(call_day, rng.uniform(600, 1080)), owner, "We miss you", result))
            # -- staff and sales during the day ---------------------------------------------------------
            if trial_day == day and stage == "lead":
                move("trial", "booked a trial", owner, self.at(day, 9.6 * 60))
                trial = (day, day + 6)
                j.fields["trial_ends_on"] = dt.date.fromordinal(trial[1])
            if trial is not None and day == trial[1] + 1:
                if convert and stage == "trial":
                    purchase_day = day + rng.randint(0, 3)
                follow = self.at(day, rng.uniform(600, 1000))
                j.calls.append((follow, owner, "Trial follow-up", "bought" if convert else "thinking about it"))
                if not convert:
                    lost_day, lost_cause = trial[1] + rng.randint(25, 40), "trial not converted"
            if lost_day == day and stage in ("lead", "trial"):
                move("lost", lost_cause, owner, self.at(day, 10.8 * 60))
            current = j.memberships[-1] if j.memberships else None
            if current is not None and not current.decided and day == current.ends + 1:
                current.decided = True
                purchase_day, purchase_win_back = self._renewal(rng, current, visit_days, day)
            if purchase_day == day:
                purchase_day = None
                renewing = current is not None and current.ends >= day - 1
                if current is not None and renewing and rng.random() < 0.8:
                    plan = current.plan
                else:
                    plan = rng.choices(club.plans, weights=club.plan_weights)[0]
                moment = self.at(day, rng.uniform(9 * 60, 20 * 60))
                if day == created:  # a walk-in buys after the front desk has entered them
                    moment = created_at + dt.timedelta(minutes=rng.uniform(10, 40))
                self._buy(j, rng, plan, day, moment, owner)
                if stage in JOINING:  # what fitness(crm).sell() does: the same stages, the same causes
                    cause = f"bought {plan.name}" + (" (win-back)" if JOINING[stage] else "")
                    move("adaptation", cause, owner, moment)
                if purchase_win_back or not renewing:
                    engaged_since = day
                    if purchase_win_back:
                        habit = _habit(rng, 0.85 * self.visit_rate)
                    if pt_day is None and len(j.memberships) == 1:
                        pt_day = self._maybe_pt(rng, day)
                purchase_win_back = False
            if pt_day == day and j.memberships and j.memberships[-1].ends >= day:
                self._buy_pt(j, rng, day, home)
            # -- a visit? -------------------------------------------------------------------------------
            visit = self._visit_today(j, rng, habit, day, engaged_since, trial)
            if visit:
                self._visit(j, rng, habit, day, home)
                visit_days.append(day)
            # nothing can happen to a member who is out, with nothing planned: jump to the next event
            if not visit and stage not in self.active_stages and stage != "trial":
                nexts = [d for d in (purchase_day, trial_day, lost_day, pt_day) if d is not None and d > day]
                if current is not None and not current.decided:
                    nexts.append(current.ends + 1)
                covered = current is not None and current.starts <= day <= current.ends
                if not covered:
                    day = min(nexts, default=today)
                    continue
            day += 1

    def _nightly(
        self,
        j: _Journey,
        day: int,
        stage: str,
        changed: float,
        visit_days: list[int],
        move: Callable[[str, str, int | None, dt.datetime], None],
    ) -> None:
        """The ``fitness.stage_*`` triggers as of ``day`` 00:00, in their priority order, each seeing the
        previous one's move: the same windows as the SQL (a visit on day ``d - n`` is within ``n`` days).
        ``move`` records a move in the member's story; ``stage`` and ``changed`` are kept here in step."""
        midnight = self.club.midnights[day - self.club.start]
        last = visit_days[-1] if visit_days else None

        def since(days: int) -> bool:
            return changed <= day - days

        def absent(days: int) -> bool:
            return last is None or last < day - days

        def go(target: str, trigger: str) -> None:
            nonlocal stage, changed
            move(target, f"trigger fitness.{trigger}", None, midnight)
            stage, changed = target, day

        if stage == "adaptation" and since(self.adapt_days):
            recent = len(visit_days) - bisect.bisect_left(visit_days, day - self.adapt_days)
            if recent >= self.adapt_visits:
                go("active", "stage_adapted")
        if (stage == "adaptation" and absent(self.adapt_absent) and since(self.adapt_absent)) or (
            stage == "active" and absent(self.active_absent) and since(self.active_absent)
        ):
            go("at_risk", "stage_at_risk")
        if stage == "at_risk" and not absent(7):
            go("active", "stage_recovered")
        # lapsed: no membership that is not over yet, no visit for the limit, and either at risk already or in
        # the stage for the limit
        settled = stage == "at_risk" or since(self.lapsed_days)
        not_over = any(m.ends >= day for m in j.memberships)
        if stage in self.active_stages and absent(self.lapsed_days) and settled and not not_over:
            go("lapsed", "stage_lapsed")

    def _buy(
        self, j: _Journey, rng: random.Random, plan: _PlanRow, starts: int, moment: dt.datetime, owner: int
    ) -> None:
        m = _Membership(plan, starts, starts + plan.duration - 1, moment, owner, plan.sessions)
        # a freeze now and then, where the plan allows one and it has started by today
        if plan.freeze_days and plan.duration > 20 and rng.random() < 0.08:
            frozen_from = starts + rng.randint(7, plan.duration - 7)
            days = rng.randint(min(7, plan.freeze_days), plan.freeze_days)
            if frozen_from < self.club.today:
                m.frozen_from, m.frozen_until, m.freeze_days = frozen_from, frozen_from + days - 1, days
                m.ends += days
        j.memberships.append(m)

    def _maybe_pt(self, rng: random.Random, starts: int) -> int | None:
        return starts + rng.randint(3, 20) if rng.random() < 0.09 else None

    def _buy_pt(self, j: _Journey, rng: random.Random, day: int, home: str) -> None:
        _, sessions, _, valid_days = PT_PACKAGE
        trainer = rng.choice(self.club.trainers[home])
        moment = self.at(day, rng.uniform(10 * 60, 19 * 60))
        j.packages.append(_Package(trainer, moment, day, day + valid_days, sessions))

    def _renewal(
        self, rng: random.Random, ended: _Membership, visit_days: list[int], day: int
    ) -> tuple[int | None, bool]:
        """Whether (and when) a member renews: likely after a busy last month, unlikely after an empty one;
        a member who does not renew sometimes comes back months later."""
        recent = len(visit_days) - bisect.bisect_left(visit_days, ended.ends - 27)
        # "busy" is relative to the visit rate, so a quieter club keeps the same renewals
        chance = 0.15 + 0.82 * min(1.0, recent / (5 * self.visit_rate))
        if rng.random() < chance:
            gap = rng.choices((0, rng.randint(1, 10), rng.randint(11, 35)), weights=(72, 18, 10))[0]
            return day + gap, False
        if rng.random() < 0.15:
            return day + rng.randint(25, 150), True
        return None, False

    def _visit_today(
        self,
        j: _Journey,
        rng: random.Random,
        habit: _Habit,
        day: int,
        engaged_since: int,
        trial: tuple[int, int] | None,
    ) -> bool:
        if trial is not None and trial[0] <= day <= trial[1] and not j.memberships:
            return rng.random() < (0.8 if day == trial[0] else 0.3)
        if not j.memberships:
            return False
        m = j.memberships[-1]
        if not m.starts <= day <= m.ends or m.sessions_left == 0:
            return False
        if m.frozen_from is not None and m.frozen_from <= day <= (m.frozen_until or day):
            return False
        weekday = (day + 6) % 7
        season = self.club.season[day - self.club.start]
        rate = habit.per_week * habit.factor(day - engaged_since) * season * habit.weekdays[weekday] / 7
        return rng.random() < min(0.9, rate)

    def _visit(self, j: _Journey, rng: random.Random, habit: _Habit, day: int, home: str) -> None:
        club = self.club
        weekday = (day + 6) % 7
        where = home if len(club.clubs) == 1 or rng.random() < 0.95 else rng.choice(club.clubs)
        target = (habit.weekend_minute if weekday >= 5 else habit.weekday_minute) + rng.gauss(0, habit.spread)
        class_id = None
        if habit.class_affinity and rng.random() < habit.class_affinity:
            slots = [s for s in club.classes.get((where, weekday), ()) if abs(s[0] - target) <= 75]
            if slots:
                start, class_id = min(slots, key=lambda s: abs(s[0] - target))
                target = start - rng.uniform(2, 12)
        # the club opens at 6:00 and closes at 23:00: an early bird is early, not before the doors open
        minute = 6 * 60 + abs(target - 6 * 60) if target < 6 * 60 else min(22 * 60 + 45, target)
        package = None
        if class_id is None and j.packages:
            p = j.packages[-1]
            if p.left and p.purchased <= day <= p.expires and rng.random() < 0.5:
                p.left -= 1
                package = p
        m = j.memberships[-1] if j.memberships else None
        if m is not None and m.sessions_left is not None and m.starts <= day <= m.ends:
            m.sessions_left -= 1
        j.visits.append((self.at(day, minute), where, rng.choice(DOORS), class_id, package))


# -- writing a batch ------------------------------------------------------------------------------------


@attrs.define
class _Counts:
    memberships: int = 0
    freezes: int = 0
    pt_packages: int = 0
    checkins: int = 0
    pt_sessions: int = 0
    purchases: int = 0
    calls: int = 0
    stage_moves: int = 0


def _write(crm: CRM, club: _Club, journeys: list[_Journey], counts: _Counts) -> None:
    """One transaction per batch: rows with ids first (customers, memberships, packages), then the rest."""
    customers: Table = Customer.__table__
    history: Table = StageHistory.__table__
    extension = crm.extension_tables["fitness"]
    with crm.transaction() as tx:
        conn = tx.session.connection()
        ids = _insert_returning(conn, customers, [j.customer for j in journeys])
        conn.execute(
            insert(extension), [{"customer_id": cid, **j.fields} for cid, j in zip(ids, journeys, strict=True)]
        )
        moves = [
            {"customer_id": cid, "from_stage": src, "to_stage": dst, "at": at, "cause": cause, "actor_id": actor}
            | {"to_lifecycle": club.stage_lifecycle[dst]}
            for cid, j in zip(ids, journeys, strict=True)
            for at, src, dst, cause, actor in j.moves
        ]
        conn.execute(insert(history), moves)
        counts.stage_moves += len(moves)
        memberships = [(cid, m) for cid, j in zip(ids, journeys, strict=True) for m in j.memberships]
        membership_ids = _insert_returning(
            conn,
            Membership.__table__,
            [_membership_row(cid, m, club.today) for cid, m in memberships],
        )
        for (_, m), mid in zip(memberships, membership_ids, strict=True):
            m.id = mid
        packages = [(cid, p) for cid, j in zip(ids, journeys, strict=True) for p in j.packages]
        package_ids = _insert_returning(
            conn,
            PTPackage.__table__,
            [
                {
                    "customer_id": cid,
                    "trainer_id": p.trainer.id,
                    "sessions_total": PT_PACKAGE[1],
                    # the pt_session activities ingested below use their sessions (the plugin's hook)
                    "sessions_left": PT_PACKAGE[1],
                    "purchased_on": dt.date.fromordinal(p.purchased),
                    "expires_on": dt.date.fromordinal(p.expires),
                }
                for cid, p in packages
            ],
        )
        for (_, p), pid in zip(packages, package_ids, strict=True):
            p.id = pid
        counts.memberships += len(memberships)
        counts.freezes += sum(1 for _, m in memberships if m.frozen_from is not None)
        counts.pt_packages += len(packages)
        report = crm.activities.ingest(_activities(ids, journeys, counts), batch_size=INGEST_BATCH, tx=tx)
        if report.rejected:  # the generator's own rows: a rejection is a bug here, never bad input
            raise RuntimeError(f"generated activities rejected: {report.rejected[:3]}")


def _membership_row(customer_id: int, m: _Membership, today: int) -> dict[str, Any]:
    """The membership as it stands today: frozen during its freeze, expired after its end, else active (the
    club lifts a freeze when it is over, so a past freeze leaves the status as the dates say)."""
    if m.frozen_from is not None and m.frozen_from <= today <= (m.frozen_until or today):
        status = "frozen"
    elif m.ends < today:
        status = "expired"
    else:
        status = "active"
    return {
        "customer_id": customer_id,
        "plan_id": m.plan.id,
        "starts_on": dt.date.fromordinal(m.starts),
        "ends_on": dt.date.fromordinal(m.ends),
        "status": status,
        # as sold: the check-ins ingested after it use the sessions, through the plugin's hook
        "sessions_left": m.plan.sessions,
        "freeze_days_used": m.freeze_days,
        "frozen_from": None if m.frozen_from is None else dt.date.fromordinal(m.frozen_from),
        "frozen_until": None if m.frozen_until is None else dt.date.fromordinal(m.frozen_until),
        "price": m.plan.price,
        "created_at": m.bought_at,
    }


def _activities(ids: list[int], journeys: list[_Journey], counts: _Counts) -> Iterator[dict[str, Any]]:
    """Every activity of the batch as ingest rows, produced lazily so the check-ins never sit in a list."""
    for cid, j in zip(ids, journeys, strict=True):
        for m in j.memberships:
            counts.purchases += 1
            yield {
                "customer_id": cid,
                "kind": "purchase",
                "amount": m.plan.price,
                "currency": m.plan.currency,
                "subject": f"Membership: {m.plan.name}",
                "occurred_at": m.bought_at,
                "owner_id": m.owner,
                "data": {"membership_id": m.id, "plan": m.plan.name},
            }
        for p in j.packages:
            counts.purchases += 1
            yield {
                "customer_id": cid,
                "kind": "purchase",
                "amount": PT_PACKAGE[2],
                "currency": "EUR",
                "subject": PT_PACKAGE[0],
                "occurred_at": p.bought_at,
                "owner_id": j.customer["owner_id"],
                "data": {"pt_package_id": p.id},
            }
        for at, owner, subject, result in j.calls:
            counts.calls += 1
            yield {
                "customer_id": cid,
                "kind": "call",
                "direction": "outbound",
                "owner_id": owner,
                "occurred_at": at,
                "duration_min": 3,
                "subject": subject,
                "result": result,
            }
        for at, where, door, class_id, package in j.visits:
            counts.checkins += 1
            data: dict[str, Any] = {"club": where, "door": door}
            if class_id is not None:
                data["class_id"] = class_id
            yield {"customer_id": cid, "kind": "checkin", "occurred_at": at, "data": data}
            if package is not None:
                counts.pt_sessions += 1
                yield {
                    "customer_id": cid,
                    "kind": "pt_session",
                    "owner_id": package.trainer.user_id,
                    "occurred_at": at + dt.timedelta(minutes=10),
                    "duration_min": 60,
                    "data": {"package_id": package.id},
                }


# -- the entry point ------------------------------------------------------------------------------------


def generate(
    crm: CRM,
    *,
    members: int = 2000,
    seed: int = 42,
    today: dt.date | None = None,
    visit_rate: float = 1.0,
    progress: Progress | None = None,
) -> GeneratedClub:
    """Fill an empty club database with ``members`` members and a year of history ending before ``today``
    (UTC today by default). Deterministic for a given ``seed``, ``today``, ``members`` and ``visit_rate``.

    At the default ``visit_rate`` a member who buys comes about 2.6 times a week, some 65 check-ins per
    generated member over the year (2000 members: about 130,000 check-ins). ``visit_rate`` scales every
    member's habit, and what counts as a busy month for renewals with it, so the club keeps its shape and
    only the volume changes: ``visit_rate=0.26`` gives about 20 check-ins per member. The stage moves still
    follow the club's configuration (4 visits in the first 30 days make an active member), so a low rate
    also means fewer members settle in.
    """
    if "fitness" not in crm.plugins:
        raise ValueError("generate() needs a CRM with the fitness plugin loaded")
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    if not 0 < visit_rate <= 2:
        raise ValueError(f"visit_rate must be in (0, 2], got {visit_rate}")
    with crm.session() as s:
        if s.scalar(select(func.count()).select_from(Customer)) or s.scalar(select(func.count()).select_from(Plan)):
            raise ValueError("generate() fills an empty club database; this one has customers or plans")
    today = today or dt.datetime.now(dt.UTC).date()
    rng = random.Random(seed)
    club = _setup(crm, rng, members, today)
    if progress is not None:
        progress("staff, plans and classes", 0, members)
    simulation = _Simulation(club, _Names(), seed, visit_rate)
    counts = _Counts()
    stages: dict[str, int] = {}
    for lo in range(0, members, BATCH_MEMBERS):
        journeys = [simulation.member(i) for i in range(lo, min(members, lo + BATCH_MEMBERS))]
        _write(crm, club, journeys, counts)
        for j in journeys:
            stages[j.customer["stage"]] = stages.get(j.customer["stage"], 0) + 1
        if progress is not None:
            progress("members", min(members, lo + BATCH_MEMBERS), members)
    _targets(crm, club, today)
    return GeneratedClub(
        seed=seed,
        today=today,
        members=members,
        managers=sum(len(v) for v in club.managers.values()),
        trainers=sum(len(v) for v in club.trainers.values()),
        plans=len(club.plans),
        classes=sum(len(v) for v in club.classes.values()),
        memberships=counts.memberships,
        freezes=counts.freezes,
        pt_packages=counts.pt_packages,
        checkins=counts.checkins,
        pt_sessions=counts.pt_sessions,
        purchases=counts.purchases,
        calls=counts.calls,
        stage_moves=counts.stage_moves,
        stages=dict(sorted(stages.items())),
    )


def _targets(crm: CRM, club: _Club, today: dt.date) -> None:
    """Monthly plans for every manager over the last three months and this one, for plan-vs-fact."""
    first = today.replace(day=1)
    months = []
    for back in range(3, -1, -1):
        index = first.year * 12 + first.month - 1 - back
        start = dt.date(index // 12, index % 12 + 1, 1)
        end = dt.date((index + 1) // 12, (index + 1) % 12 + 1, 1) - dt.timedelta(days=1)
        months.append((start, end))
    with crm.transaction() as tx:
        for owners in club.managers.values():
            for user_id in owners:
                for start, end in months:
                    for metric, planned in (("contacts", 40), ("deals", 12)):
                        crm.targets.set(
                            {"user_id": user_id, "metric": metric, "period_start": start, "period_end": end}
                            | {"planned": planned},
                            tx=tx,
                        )
