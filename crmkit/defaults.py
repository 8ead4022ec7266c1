"""The core's own declarations, contributed through the same hooks a vertical uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import phonenumbers

from crmkit.access import CORE_PERMISSIONS, PermissionSpec, RoleSpec, core_roles
from crmkit.hookspecs import hookimpl
from crmkit.reports.core import core_reports
from crmkit.reports.headlines import core_headlines
from crmkit.reports.spec import Headline, Report
from crmkit.specs import (
    CORE_ACTIVITY_STATUSES,
    ActivityKindSpec,
    ActivityStatusSpec,
    ImporterSpec,
    StageSpec,
    TransitionSpec,
)

plugin_name = "crmkit"


@hookimpl
def crmkit_register_stages() -> list[StageSpec]:
    return [
        StageSpec("lead", "Lead", order=10, initial=True, description="A potential customer."),
        StageSpec("active", "Active", order=20, initial=True, description="Buys or uses the service."),
        StageSpec("loyal", "Loyal", order=30, description="A repeat, permanent customer."),
        StageSpec("lost", "Lost", order=40, description="Stopped buying; a win-back target."),
    ]


@hookimpl
def crmkit_register_roles() -> list[RoleSpec]:
    return core_roles()


@hookimpl
def crmkit_register_permissions() -> list[PermissionSpec]:
    return [PermissionSpec(name, description) for name, description in CORE_PERMISSIONS.items()]


@hookimpl
def crmkit_register_transitions() -> list[TransitionSpec]:
    return [
        TransitionSpec("lead", "active"),
        TransitionSpec("lead", "lost"),
        TransitionSpec("active", "loyal"),
        TransitionSpec("active", "lost"),
        TransitionSpec("loyal", "lost"),
        TransitionSpec("loyal", "active", requires_reason=True),
        TransitionSpec("lost", "active", requires_reason=True),
    ]


@hookimpl
def crmkit_register_activity_kinds() -> list[ActivityKindSpec]:
    return [
        # the telephony importer keeps the numbers of a call in its data
        ActivityKindSpec("call", "Call", channel="phone", required=("direction",), personal_data=("caller", "callee")),
        ActivityKindSpec("email", "Email", channel="email", required=("direction",)),
        ActivityKindSpec("sms", "SMS", channel="sms", required=("direction",)),
        ActivityKindSpec("chat", "Chat", channel="chat"),
        ActivityKindSpec(
            "meeting",
            "Meeting",
            channel="in_person",
            required=("occurred_at", "contact_id", "subject", "result"),
            calendar=True,
            description="The minimum record of a meeting: when, with whom, about what, and how it ended.",
        ),
        ActivityKindSpec("visit", "Visit", channel="in_person", calendar=True),
        ActivityKindSpec("purchase", "Purchase", channel="pos", required=("amount", "currency")),
        ActivityKindSpec("payment", "Payment", channel="pos", required=("amount", "currency")),
        ActivityKindSpec("note", "Note", channel="other"),
    ]


@hookimpl
def crmkit_register_activity_statuses() -> list[ActivityStatusSpec]:
    return list(CORE_ACTIVITY_STATUSES)


@hookimpl
def crmkit_register_importers() -> list[ImporterSpec]:
    from crmkit.imports.builtin import RECEIPTS, TELEPHONY

    return [TELEPHONY, RECEIPTS]


@hookimpl
def crmkit_register_reports() -> list[Report]:
    return core_reports()


@hookimpl
def crmkit_register_headlines() -> list[Headline]:
    return core_headlines()


@hookimpl(trylast=True)
def crmkit_run_demo(path: Path, echo: Callable[[str], None], size: int) -> bool:
    from crmkit import demo

    demo.run(f"sqlite:///{path}", echo=echo).close()
    return True


@hookimpl(trylast=True)
def crmkit_normalize_phone(raw: str, region: str) -> str | None:
    try:
        # without keep_raw_input: parsing is a third cheaper, and the input is only needed to word a refusal
        number = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {raw!r}") from exc
    # valid in the region it was read in implies valid: one region's patterns instead of every region of
    # the country code (25 for +1); the full check decides only for numbers of another region
    if not phonenumbers.is_valid_number_for_region(number, region.upper()) and not phonenumbers.is_valid_number(number):
        number = phonenumbers.parse(raw, region.upper(), keep_raw_input=True)
        # name where it was read: a national number in the customer's region, an international one by its code
        where = (
            f"in {region.upper()}"
            if number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY
            else f"with country code +{number.country_code}"
        )
        raise ValueError(f"not a valid phone number {where}: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
