"""``crmkit audit``: verify the audit log's chains, show a customer's entries or a field's history.

``crmkit audit verify`` exits 0 when every chain is intact and 1 when it finds a break, printing each one
(which chain, which entry, what is wrong), so a scheduled job can alert on it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from crmkit.cli import crm_options

if TYPE_CHECKING:
    from crmkit.app import CRM

#: how many breaks ``verify`` prints (it counts them all)
PROBLEMS_SHOWN = 50


@click.group("audit")
def audit() -> None:
    """The audit log: verify it, show a customer's entries or a field's history."""


@audit.command("verify")
@crm_options
def verify(crm: CRM) -> None:
    """Check every chain of the log; exit 1 if an entry was altered, inserted or removed."""
    result = crm.audit.verify()
    redacted = f", {result.redacted} redacted by erasures" if result.redacted else ""
    if result.ok:
        click.echo(f"{result.entries} entries in {result.chains} chains: intact{redacted}")
        return
    for problem in result.problems[:PROBLEMS_SHOWN]:
        click.echo(f"broken: {problem}")
    more = len(result.problems) - PROBLEMS_SHOWN
    if more > 0:
        click.echo(f"... and {more} more")
    click.echo(f"{result.entries} entries in {result.chains} chains: {len(result.problems)} problem(s){redacted}")
    raise SystemExit(1)


@audit.command("show")
@crm_options
@click.option("--customer", "customer_id", type=click.IntRange(min=1), required=True, help="The customer's id.")
@click.option("--field", default=None, help="Only this field's history: each change with its old and new value.")
def show(crm: CRM, customer_id: int, field: str | None) -> None:
    """A customer's audit entries, oldest first, as JSON lines (personal values masked for a role without
    the right to read them); with --field, that field's history."""
    rows = crm.audit.field_history(customer_id, field) if field else crm.audit.for_customer(customer_id)
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
