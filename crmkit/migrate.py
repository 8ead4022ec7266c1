"""Alembic, driven from a ``CRM``: the core's revisions plus one branch per plugin that ships some.

The core's revisions live in ``crmkit/migrations/versions`` under the branch label ``crmkit``; a plugin
returns its own folder from ``crmkit_register_migrations`` and labels its first revision with its name,
``depends_on`` the core revision it extends. All share one version table.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, Table, text

from crmkit.plugins import Registry


class CRM(Protocol):
    """What migrations use of a :class:`crmkit.CRM`: its engine, its plugins' declarations and its tables."""

    @property
    def engine(self) -> Engine: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def metadata(self) -> MetaData: ...
    @property
    def extension_tables(self) -> dict[str, Table]: ...


VERSION_TABLE = "crmkit_alembic_version"


def _folder() -> Path:
    return Path(str(resources.files("crmkit") / "migrations"))


def config(crm: CRM, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_folder()))
    cfg.set_main_option("path_separator", "os")
    locations = [str(_folder() / "versions"), *(str(p) for p in crm.registry.migrations.values())]
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    cfg.attributes["crm"] = crm
    cfg.attributes["connection"] = connection
    return cfg


def _run(crm: CRM, connection: Connection | None, fn: Any, *args: Any, **kwargs: Any) -> None:
    if connection is not None:
        fn(config(crm, connection), *args, **kwargs)
        return
    with crm.engine.begin() as conn:
        fn(config(crm, conn), *args, **kwargs)


def upgrade(crm: CRM, revision: str = "heads", connection: Connection | None = None) -> None:
    """Bring the database to ``revision`` (all branches' heads by default)."""
    _run(crm, connection, command.upgrade, revision)


def downgrade(crm: CRM, revision: str, connection: Connection | None = None) -> None:
    _run(crm, connection, command.downgrade, revision)


def stamp_heads(crm: CRM, connection: Connection) -> None:
    """Record that a schema built by ``create_all`` is at every branch's head."""
    command.stamp(config(crm, connection), "heads")


def heads(crm: CRM) -> set[str]:
    return set(ScriptDirectory.from_config(config(crm)).get_heads())


def current(crm: CRM) -> set[str]:
    with crm.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return set(ctx.get_current_heads())


def up_to_date(crm: CRM) -> bool:
    """Whether every branch's head is applied (a plugin's revision implies the core ones it depends on,
    so the version table may list fewer revisions than there are heads)."""
    script = ScriptDirectory.from_config(config(crm))
    applied = {r.revision for r in script.get_all_current(tuple(current(crm)))}
    return heads(crm) <= applied


def revision(crm: CRM, message: str, *, branch: str, autogenerate: bool = True) -> None:
    """Write a new revision on ``branch`` (``crmkit`` or a plugin's name), comparing the database with
    that branch's tables only. A plugin's first revision starts its branch and depends on the core's
    current head."""
    cfg = config(crm)
    cfg.attributes["branch"] = branch
    script = ScriptDirectory.from_config(cfg)
    kwargs: dict[str, Any] = {"head": f"{branch}@head"}
    if branch != "crmkit" and not any(branch in (r.branch_labels or ()) for r in script.walk_revisions()):
        if branch not in crm.registry.migrations:
            raise ValueError(f"plugin {branch!r} declares no migrations folder (crmkit_register_migrations)")
        kwargs = {
            "head": "base",
            "branch_label": branch,
            "depends_on": script.get_revision("crmkit@head").revision,
            "version_path": str(crm.registry.migrations[branch]),
        }
    with crm.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=autogenerate, **kwargs)


def drop_version_table(connection: Connection) -> None:
    connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
