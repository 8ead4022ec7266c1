"""What the core declares personal beyond the customer's own fields (``crm.fields.personal()``), and how a
plugin table declares a personal column. Masking, export and erasure work from these declarations, never
from scanning tables. Each mapping gives what an erasure leaves in the column."""

from __future__ import annotations

from sqlalchemy import Table

#: What an erasure leaves of a personal value that may not be empty (a name, a task's title).
ERASED = "[erased]"
#: A contact is a person.
CONTACT_PERSONAL = {"name": ERASED, "email": None, "phone": None}
#: An activity's free text is written about the customer; the keys of its ``data`` that are personal are
#: declared by its kind (``ActivityKindSpec.personal_keys``).
ACTIVITY_PERSONAL = {"subject": None, "result": None}
#: A task's text names the customer ("Renewal call: Zoe Quintessa").
TASK_PERSONAL = {"title": ERASED, "reason": None}
#: A message's text is addressed to the customer.
OUTBOX_PERSONAL = {"subject": None, "body": ERASED}


def personal_columns(table: Table) -> list[str]:
    """The columns of a plugin's (or the app's) table declared personal:
    ``info={"crmkit": {"personal": True}}``."""
    return [c.name for c in table.columns if c.info.get("crmkit", {}).get("personal") is True]
