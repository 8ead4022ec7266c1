"""The core's reports: the KPI library and trigger effectiveness, declared like any plugin's reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crmkit.errors import ValidationError
from crmkit.reports import journeys, kpis
from crmkit.reports.spec import Chart, Column, Param, Report
from crmkit.triggers.spec import MIN_SAMPLE

if TYPE_CHECKING:
    from crmkit.reports.spec import ReportContext


def _first_of_month(day: dt.date, months_back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - months_back
    return dt.date(index // 12, index % 12 + 1, 1)


def year_ago(now: dt.datetime) -> dt.date:
    """The first day of the month eleven months back: with ``until`` below, the last twelve calendar
    months, the current one to date."""
    return _first_of_month(now.date(), 11)


def tomorrow(now: dt.datetime) -> dt.date:
    """The day after today: a default period ends with today, never after it, so no chart draws days that
    have not happened yet (the current month is drawn as "to date")."""
    return now.date() + dt.timedelta(days=1)


PERIOD = (
    Param("since", "date", default=year_ago, help="first day of the period"),
    Param("until", "date", default=tomorrow, help="first day after the period (default: tomorrow)"),
)


def _period(params: Mapping[str, Any]) -> dict[str, Any]:
    """The period of a core report, refused with crmkit's error when it ends before it starts (the KPI
    functions themselves raise ``ValueError``, as a Python API does)."""
    since, until = params["since"], params["until"]
    if until < since:
        raise ValidationError({"until": [f"must not be before since ({since.isoformat()})"]}, "invalid parameters")
    return {"since": since, "until": until}


def _leads_to_deals(ctx: ReportContext, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    by = params["by"]
    rows = kpis.leads_to_deals(ctx, by=by, **_period(params))
    return [{"group": row[by], **{k: v for k, v in row.items() if k != by}} for row in rows]


def _growth(ctx: ReportContext, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    if params["base"] == "active":
        return [
            {
                "month": r["month"],
                "start": r["start"],
                "new": r["joined"],
                "left": r["left"],
                "end": r["end"],
                "growth_pct": r["growth_pct"],
            }
            for r in kpis.active_growth(ctx, **_period(params))
        ]
    return [{**r, "left": 0} for r in kpis.customer_growth(ctx, **_period(params))]


def _plan_vs_fact(ctx: ReportContext, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = kpis.plan_vs_fact(ctx, **_period(params))
    return [{"label": f"{row['user']} · {row['metric']} · {row['period_start']}", **row} for row in rows]


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def effectiveness_rows(
    ctx: ReportContext, params: Mapping[str, Any], *, prefix: str = "", only_fired: bool = False
) -> list[dict[str, Any]]:
    """Rows of ``ctx.triggers.effectiveness`` (computed by the database) for triggers with a goal whose
    name starts with ``prefix``, firings in ``[since, until)``; rates as percentages."""

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 2)

    names = [t.name for t in ctx.triggers.all() if t.name.startswith(prefix) and t.goal is not None]
    period = _period(params)
    start = dt.datetime.combine(period["since"], dt.time(), dt.UTC)
    end = dt.datetime.combine(period["until"], dt.time(), dt.UTC)
    found = ctx.triggers.effectiveness(
        names=names, since=start, until=end, min_sample=_or(params.get("min_sample"), MIN_SAMPLE),
        by_action=bool(params.get("by_action")),
    )  # fmt: skip
    rows = []
    for e in found:
        if only_fired and not (e.fired or e.held_out):
            continue
        interval = e.uplift_interval
        rows.append(
            {
                "trigger": e.trigger,
                "action": e.action,
                "fired": e.fired,
                "converted": e.converted,
                "conversion_pct": pct(e.conversion_rate),
                "held_out": e.held_out,
                "held_out_converted": e.held_out_converted,
                "held_out_pct": pct(e.held_out_rate),
                "uplift_pp": pct(e.uplift),
                "uplift_low_pp": pct(interval[0]) if interval else None,
                "uplift_high_pp": pct(interval[1]) if interval else None,
                "verdict": e.verdict,
            }
        )
    return rows


EFFECTIVENESS_COLUMNS = (
    Column("trigger", labels="trigger"),
    Column("fired", "Contacted", "integer"),
    Column("converted", type="integer"),
    Column("conversion_pct", "Conversion", "percent"),
    Column("held_out", "Held out", "integer"),
    Column("held_out_converted", "Held out converted", "integer"),
    Column("held_out_pct", "Held-out conversion", "percent"),
    Column("uplift_pp", "Uplift (pp)", "number"),
    Column("uplift_low_pp", "Uplift, 95% low (pp)", "number"),
    Column("uplift_high_pp", "Uplift, 95% high (pp)", "number"),
    Column("verdict", "Verdict"),
    Column("action", "Action", labels="value"),
)
#: The parameters of an effectiveness report: the period, the smallest group worth a verdict, and the
#: breakdown by what the contact policy made of each message.
EFFECTIVENESS_PARAMS = (
    *PERIOD,
    Param("min_sample", "integer", default=MIN_SAMPLE, help="firings each group needs before a verdict"),
    Param("by_action", "boolean", default=False, help="a row per message outcome (sent, held, dropped, task)"),
)
EFFECTIVENESS_CHARTS = (
    Chart(
        "bar",
        x="trigger",
        y=("conversion_pct", "held_out_pct"),
        title="Conversion: contacted vs held out",
        y_title="Reached the goal",
        empty_text="No conversions to compare yet: no customer of these firings has reached the goal, or the "
        "goal windows have not passed.",
    ),
)


def _field_history(ctx: ReportContext, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    if ctx.audit is None:
        raise ValidationError({"report": ["this report needs the CRM's audit log"]}, "invalid report context")
    period = _period(params)
    since, until = (dt.datetime.combine(period[k], dt.time(), tzinfo=dt.UTC) for k in ("since", "until"))
    rows = ctx.audit.field_history(params.get("customer"), params.get("field"), since=since, until=until)
    return [{**row, "at": row["at"][:19].replace("T", " ")} for row in reversed(rows)]


FIELD_HISTORY_COLUMNS = (
    Column("at", "When (UTC)"),
    Column("customer_id", "Customer", "integer"),
    Column("field", "Field"),
    Column("old", "Before"),
    Column("new", "After"),
    Column("actor", "By"),
    Column("action", "Change"),
)


def _journey(data: Any) -> Any:
    def run(ctx: ReportContext, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return list(data(ctx, {**params, **_period(params)}))

    return run


def core_reports() -> list[Report]:
    return [
        Report(
            "crm.contacts_by_lifecycle",
            "Contacts over the lifecycle",
            data=_journey(journeys.contacts_per_lifecycle),
            params=PERIOD,
            columns=[
                Column("lifecycle", "Lifecycle stage", labels="stage"),
                Column("customers", "Customers contacted", "integer"),
                Column("contacts", type="integer"),
                Column("per_customer", "Contacts per customer", "number"),
            ],
            charts=[Chart("bar", x="lifecycle", y=("per_customer",), title="Contacts per customer")],
            description="How many contacts (trigger actions and staff calls, emails, messages) customers got "
            "in each lifecycle stage, counted in the stage they were in at the time.",
            group="retention",
            definition="contacts-by-lifecycle",
        ),
        Report(
            "crm.contact_sequences",
            "Contacts before a conversion",
            data=_journey(journeys.sequences_before_conversion),
            params=[
                *PERIOD,
                Param("kinds", default="purchase", help="the activity kinds that count as a conversion, a,b"),
                Param("lookback_days", "integer", default=60, help="how far before a conversion contacts count"),
            ],
            columns=[
                Column("sequence", "Last contacts before it, oldest first"),
                Column("conversions", type="integer"),
                Column("share_pct", "Share", "percent"),
            ],
            description="Each customer's first conversion in the period (a purchase, by default) with the "
            "last three contacts before it: which paths came before renewals.",
            group="retention",
            definition="contact-sequences",
        ),
        Report(
            "crm.field_history",
            "Field history",
            data=_field_history,
            params=[
                *PERIOD,
                Param("customer", "integer", help="one customer's changes (all reached customers' when empty)"),
                Param("field", help="one field's changes (every field's when empty)"),
            ],
            columns=FIELD_HISTORY_COLUMNS,
            description="Who changed which field of which customer, when, from what to what: the audit log's "
            "changes, newest first (the latest 1,000). Personal values are empty for a role without the right "
            "to read them.",
            permissions=("audit:read",),
            group="audit",
        ),
        Report(
            "crm.leads_to_deals",
            "Leads to deals",
            data=_leads_to_deals,
            params=[*PERIOD, Param("by", default="source", choices=kpis.GROUPINGS)],
            columns=[
                Column("group", "Group", labels="value"),
                Column("leads", type="integer"),
                Column("deals", type="integer"),
                Column("per_100", "Deals per 100 leads", "number"),
            ],
            charts=[Chart("bar", x="group", y=("per_100",), title="Deals per 100 leads")],
            description="Customers created in the period (leads) who reached the active stage before its end.",
            group="sales",
            definition="leads-to-deals",
        ),
        Report(
            "crm.average_check",
            "Average check",
            data=lambda ctx, p: kpis.average_check(ctx, period=p["period"], currency=p.get("currency"), **_period(p)),
            params=[*PERIOD, Param("period", default="month", choices=("month", "year")), Param("currency")],
            columns=[
                Column("period", labels="month"),
                Column("revenue", type="money"),
                Column("purchases", type="integer"),
                Column("paying_customers", "Paying customers", "integer"),
                Column("average_check", "Average check", "money"),
                Column("avg_ticket", "Average ticket", "money"),
            ],
            charts=[
                Chart(
                    "bar",
                    x="period",
                    y=("average_check", "avg_ticket"),
                    title="Average check and ticket",
                    y_title="Average amount",
                    period="month",
                )
            ],
            description="Purchase revenue per paying customer (average check) and per purchase (average ticket).",
            group="sales",
            definition="average-check",
        ),
        Report(
            "crm.customer_growth",
            "Customer base growth",
            data=_growth,
            params=[
                *PERIOD,
                Param(
                    "base",
                    default="all",
                    choices=("all", "active"),
                    help="all records, or the active base (customers in an active or loyal stage)",
                ),
            ],
            columns=[
                Column("month", labels="month"),
                Column("start", "At start", "integer"),
                Column("new", "Joined", "integer"),
                Column("left", "Left", "integer"),
                Column("end", "At end", "integer"),
                Column("growth_pct", "Growth", "percent"),
            ],
            charts=[
                Chart("line", x="month", y=("end",), title="Customers at the end of the month", period="month"),
                Chart("bar", x="month", y=("growth_pct",), title="Growth per month", period="month"),
            ],
            description="Customers at the start and end of each month and the growth of the base. On all "
            "records (base 'all'), a customer joins when created and never leaves. On the active base (base "
            "'active'), a customer joins when they enter an active or loyal stage and leaves when they move "
            "out of it (to lost, or back to a lead).",
            group="members",
            definition="customer-growth",
        ),
        Report(
            "crm.lead_processing_time",
            "Lead processing time",
            data=lambda ctx, p: kpis.lead_processing_time(ctx, **_period(p)),
            params=PERIOD,
            columns=[
                Column("owner", "Manager"),
                Column("leads", type="integer"),
                Column("contacted", type="integer"),
                Column("avg_hours", "Average time to first contact", "hours"),
            ],
            charts=[Chart("bar", x="owner", y=("avg_hours",), title="Hours from creation to first outbound contact")],
            description="How long each manager's new leads waited for their first call, message or email.",
            group="staff",
            definition="lead-processing-time",
        ),
        Report(
            "crm.plan_vs_fact",
            "Plan vs fact",
            data=_plan_vs_fact,
            params=PERIOD,
            columns=[
                Column("user", "Manager"),
                Column("metric", labels="value"),
                Column("period_start", "From", "date"),
                Column("period_end", "To", "date"),
                Column("planned", type="integer"),
                Column("done", type="integer"),
                Column("progress_pct", "Progress", "percent"),
                Column("label"),
            ],
            # a cell per manager, metric and target period: contacts (a target of 40) and deals (of 12) are
            # not on one scale, their progress towards the target is
            charts=[
                Chart(
                    "heatmap",
                    x="period_start",
                    y=("user", "metric"),
                    value="progress_pct",
                    title="Progress towards the target",
                    x_title="Target period",
                    y_title="Manager · metric",
                    period="month",
                )
            ],
            description="Each manager's targets for the period (contacts, deals...) against what they did.",
            group="staff",
            definition="plan-vs-fact",
        ),
        Report(
            "crm.lifecycle_funnel",
            "Lifecycle funnel",
            data=lambda ctx, p: kpis.lifecycle_funnel(ctx, **_period(p)),
            params=PERIOD,
            columns=[
                Column("stage", labels="stage"),
                Column("customers", type="integer"),
                Column("pct", "Share", "percent"),
            ],
            charts=[Chart("bar", x="stage", y=("customers",), title="Customers who reached each stage")],
            description="Of the customers created in the period, how many reached each stage of the lifecycle.",
            group="members",
            definition="lifecycle-funnel",
        ),
        Report(
            "crm.stage_durations",
            "Time in stage",
            data=lambda ctx, p: kpis.stage_durations(ctx, **_period(p)),
            params=PERIOD,
            columns=[
                Column("stage", labels="stage"),
                Column("stays", type="integer"),
                Column("avg_days", "Average days", "number", unit="days"),
            ],
            charts=[Chart("bar", x="stage", y=("avg_days",), title="Average days in stage")],
            description="How long customers stayed in each stage before they moved on.",
            group="members",
            definition="stage-durations",
        ),
        Report(
            "crm.cohort_retention",
            "Retention by monthly cohort",
            data=lambda ctx, p: kpis.cohort_retention(ctx, months=p["months"], **_period(p)),
            params=[*PERIOD, Param("months", "integer", default=6)],
            columns=[
                Column("cohort", labels="month"),
                Column("size", type="integer"),
                Column("month", "Month", "integer"),
                Column("retained", type="integer"),
                Column("retention_pct", "Retention", "percent"),
                Column("churn_pct", "Churn", "percent"),
            ],
            charts=[
                Chart(
                    "heatmap",
                    x="month",
                    y=("cohort",),
                    value="retention_pct",
                    title="Retention by cohort: share still a customer, months after joining",
                    x_title="Months since the cohort's first month",
                    y_title="Cohort",
                    period="month",
                )
            ],
            description="Of the customers who became active in each month, the share still active 1, 2, 3... "
            "months later.",
            group="retention",
            definition="cohort-retention",
        ),
        Report(
            "crm.trigger_effectiveness",
            "Trigger effectiveness",
            data=effectiveness_rows,
            params=EFFECTIVENESS_PARAMS,
            columns=EFFECTIVENESS_COLUMNS,
            charts=EFFECTIVENESS_CHARTS,
            description="Firings of triggers with a goal, and how many reached it, against the control group: "
            "the uplift with its 95% interval, and 'not enough data' while either group is small.",
            group="retention",
            definition="trigger-effectiveness",
        ),
    ]
