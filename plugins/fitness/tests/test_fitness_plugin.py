"""The fitness plugin passes the core's contract checks and migrates on its own branch."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from crmkit_fitness import FitnessConfig, FitnessPlugin

from crmkit import CRM, migrate
from crmkit.testing import check_plugin
from crmkit.triggers import Trigger


def test_contract(crm_factory: Any) -> None:
    check_plugin(crm_factory([FitnessPlugin(FitnessConfig())], create_schema=False), "fitness")


def test_installed_entry_point_loads_the_plugin() -> None:
    assert "fitness" in CRM("sqlite://").plugins


def test_migrations_build_the_models(crm_factory: Any) -> None:
    crm = crm_factory([FitnessPlugin(FitnessConfig())], create_schema=False)
    migrate.upgrade(crm)
    assert migrate.up_to_date(crm)
    with crm.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), crm.metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == migrate.VERSION_TABLE)] == []


def test_a_late_cancellation_is_not_a_visit_and_frees_the_calendar(club_factory: Any) -> None:
    club = club_factory()
    assert club.registry.activity_statuses["late_cancel"].owner == "fitness"
    assert "late_cancel" not in club.registry.happened and "done" in club.registry.happened
    member = club.customers.create({"name": "Lia"})["id"]
    coach = club.users.create({"name": "Coach"})["id"]
    booked = {"customer_id": member, "kind": "visit", "occurred_at": "2026-06-15T18:00:00+00:00", "owner_id": coach}
    club.activities.log({**booked, "status": "late_cancel"})
    club.activities.log(booked)  # the coach's slot was freed: no calendar conflict
    club.triggers.register(Trigger("gym.visited", condition=lambda q: q.count("visit") == 1))
    with club.session() as s:  # the late cancellation does not count as a visit: one visit, not two
        assert list(s.scalars(club.triggers.matching("gym.visited", dt.datetime(2026, 6, 16, tzinfo=dt.UTC)))) == [
            member
        ]
