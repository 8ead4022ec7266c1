"""The contact policy's cost: a real run of the fitness retention triggers, each sending a message, with the
policy on (consent, caps, quiet hours, priorities) against the same run with ``ContactPolicy.off()``.

The fitness edition's triggers give staff tasks; here each is declared again as ``bench.<name>`` with the
same condition, stages, cooldown and priority and a message instead (renewals and returns from a freeze
as ``service`` messages, the others ``marketing``), so both sides write firings and messages and nothing
else. 70% of the club agreed to marketing by SMS (a sign-up form, 60 days before ``as_of``), every tenth
of those withdrew since, and every twentieth member withdrew service messages: the policy has real
decisions to make. Both sides fire for the same customers; the policy then sends fewer messages.
"""

from __future__ import annotations

import datetime as dt

import attrs
from crmkit_fitness import FitnessPlugin
from sqlalchemy import text

from bench.common import Workload
from crmkit import CRM
from crmkit.contact_policy import ContactPolicy
from crmkit.triggers import MessageAction, Trigger

PREFIX = "bench."
_SERVICE = {"fitness.membership_expiring", "fitness.sessions_low", "fitness.freeze_ending"}


def messaging_triggers(crm: CRM) -> list[Trigger]:
    """Each fitness trigger as one that sends a message, and does nothing else."""
    out = []
    for trigger in crm.triggers.all():
        if not trigger.name.startswith("fitness."):
            continue
        purpose = "service" if trigger.name in _SERVICE else "marketing"
        message = MessageAction("sms", "Hi {{ customer.name }}, " + trigger.name, purpose=purpose)
        out.append(
            attrs.evolve(
                trigger,
                name=PREFIX + trigger.name.removeprefix("fitness."),
                task=None,
                move_to=None,
                call=None,
                message=message,
                holdout=0.0,
                goal=None,
            )
        )
    return out


class PolicyRun:
    """The club with consents, and two CRMs on it: with the default policy and with none."""

    def __init__(self, crm: CRM, as_of: dt.datetime) -> None:
        self.as_of = as_of
        self.on = crm
        self.off = CRM(engine=crm.engine, plugins=[FitnessPlugin()], load_entry_points=False,
                       contact_policy=ContactPolicy.off())  # fmt: skip
        self.triggers = messaging_triggers(crm)
        for side in (self.on, self.off):
            for trigger in self.triggers:
                side.triggers.register(trigger)
        self._consents(given=as_of - dt.timedelta(days=60), withdrawn=as_of - dt.timedelta(days=5))

    def _consents(self, *, given: dt.datetime, withdrawn: dt.datetime) -> None:
        sqlite = self.on.engine.dialect.name == "sqlite"

        def at(moment: dt.datetime) -> object:
            return moment.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else moment

        rows = (
            "INSERT INTO crm_consents (customer_id, channel, purpose, at, status, source, expires_at, actor)"
            " SELECT id, 'sms', :purpose, :at, :status, 'bench', NULL, 'bench' FROM crm_customers WHERE {}"
        )
        with self.on.engine.begin() as conn:
            conn.execute(text("DELETE FROM crm_consents"))
            conn.execute(text(rows.format("id % 10 < 7")), {"purpose": "marketing", "at": at(given), "status": "given"})
            conn.execute(
                text(rows.format("id % 10 = 0")), {"purpose": "marketing", "at": at(withdrawn), "status": "withdrawn"}
            )
            conn.execute(
                text(rows.format("id % 20 = 3")), {"purpose": "service", "at": at(withdrawn), "status": "withdrawn"}
            )

    def reset(self) -> None:
        """No firings or messages of the bench triggers: each run starts from the club as built."""
        with self.on.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM crm_outbox WHERE source LIKE 'trigger:{PREFIX}%'"))
            conn.execute(text(f"DELETE FROM crm_trigger_firings WHERE trigger LIKE '{PREFIX}%'"))

    def run(self, crm: CRM) -> dict[str, int]:
        names = [t.name for t in self.triggers]
        report = crm.triggers.run(self.as_of, names=names)
        with crm.engine.connect() as conn:
            messages = conn.execute(
                text(f"SELECT count(*) FROM crm_outbox WHERE source LIKE 'trigger:{PREFIX}%'")
            ).scalar_one()
        return {"firings": sum(r.fired for r in report.results), "messages": int(messages)}

    def close(self) -> None:
        self.reset()
        with self.on.engine.begin() as conn:
            conn.execute(text("DELETE FROM crm_consents"))


def policy_workload(crm: CRM, as_of: dt.datetime) -> tuple[Workload, PolicyRun]:
    """The fitness triggers with messages, policy on (crmkit) against policy off (the baseline)."""
    run = PolicyRun(crm, as_of)
    workload = Workload(
        f"fitness triggers sending messages ({len(run.triggers)}), policy on vs off",
        crmkit=lambda: run.run(run.on),
        baseline=lambda: run.run(run.off),
        # the same customers fire either way; the policy holds some messages back, so only firings compare
        same=lambda ours, theirs: ours["firings"] == theirs["firings"] and 0 < ours["messages"] < theirs["messages"],
        baseline_kind="the same run, ContactPolicy.off()",
        reset=run.reset,
        parts=lambda result: {"firings": result["firings"], "messages": result["messages"]},
    )
    return workload, run
