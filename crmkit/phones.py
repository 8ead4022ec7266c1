"""Phone numbers: the region a customer's number is read in, and its normalised form."""

from __future__ import annotations

from collections.abc import Mapping

import phonenumbers

from crmkit.hooks import Hooks


class Phones:
    """Reads phone numbers the way the CRM is configured: a default region, a region per branch, and the
    ``crmkit_normalize_phone`` hook deciding the normalised form."""

    def __init__(self, hooks: Hooks, region: str = "US", branch_regions: Mapping[str, str] | None = None) -> None:
        self._hooks = hooks
        #: The region (ISO 3166 alpha-2) phone numbers written without ``+`` are read in, unless the
        #: customer's ``country`` or their branch's region says otherwise.
        self.region = _region(region, "region")
        #: The region of each branch, for customers with a branch and no ``country``: ``{"bangkok": "TH"}``.
        self.branch_regions: dict[str, str] = {
            branch: _region(r, f"branch_regions[{branch!r}]") for branch, r in (branch_regions or {}).items()
        }

    def normalize(self, raw: str, region: str | None = None) -> str | None:
        """The normalised number, as decided by the ``crmkit_normalize_phone`` hook; ``ValueError`` with the
        reason when it is not a valid number in ``region`` (the default region when ``None``)."""
        return self._hooks.normalize_phone(raw, (region or self.region).upper())

    def region_of(self, country: str | None = None, branch: str | None = None) -> str:
        """The region a customer's phone is read in: their ``country``, else their branch's region, else
        the default region."""
        if country:
            return country.upper()
        if branch is not None and branch in self.branch_regions:
            return self.branch_regions[branch]
        return self.region


def _region(value: object, what: str) -> str:
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{what}={value!r} is not an ISO 3166 alpha-2 region that phonenumbers knows")
    return value.upper()
