"""The fitness reports (filled in below)."""

from __future__ import annotations

from crmkit.reports import Report


def fitness_reports() -> list[Report]:
    return []
