"""The one rule for text in a CSV cell: a spreadsheet never runs it as a formula, a phone number survives.

Spreadsheets read a cell whose text starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or a
carriage return) as a formula: customer data written to a CSV file must never run there (a
``=HYPERLINK(...)`` in a name, a ``+cmd|' /C calc'!A0`` in a note). :func:`csv_text` writes such text
with a ``'`` in front, which a spreadsheet shows as text. Two kinds of text are written as they are:

* a phone number in E.164 form, ``+`` and 6 to 15 digits (``+4915112345678``), in any column: it is how
  crmkit stores a normalised phone, and the most a spreadsheet does with it is read it as a number;
* in a phone column (``phone=True``; :func:`phone_column` says which columns are, by name: ``phone``,
  ``phone_...``, ``..._phone``), a number as a person typed it: ``+``, then only digits, spaces and
  ``( ) . - /``, with 6 to 15 digits (``+1 (212) 555-0100``). Such text holds no name, no function and no
  ``|`` or ``!``, so it cannot call anything; in another column ``+5-3`` would be quietly computed, so the
  rule stays in the columns known to hold phone numbers.

Everything else starting with one of those characters gets the ``'``: ``-5+3``, ``+cmd|...``, ``@SUM(A1)``,
``+1-800-FLOWERS``. Text that already starts with ``'`` followed (after any more ``'``) by one of them gets
one more ``'``, so :func:`read_csv_text` takes exactly one away and every text comes back as it was:
export, then import, changes nothing. Numbers are not text: a negative amount is written as ``-12.50``.
"""

from __future__ import annotations

import re

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: A phone number as crmkit stores it (E.164).
E164 = re.compile(r"\+[0-9]{6,15}")
#: A phone number as a person may type it; it must also have 6 to 15 digits (:func:`is_typed_phone`).
TYPED_PHONE = re.compile(r"\+[0-9][0-9 ()./-]*")


def phone_column(name: str) -> bool:
    """A column named for phone numbers: ``phone``, ``phone_normalized``, ``mobile_phone``..."""
    return name == "phone" or name.startswith("phone_") or name.endswith("_phone")


def is_typed_phone(text: str) -> bool:
    """``text`` is a phone number in E.164 form or as typed with ``+``: only digits and ``( ) . - /``
    and spaces after the ``+``, 6 to 15 digits in all."""
    if not TYPED_PHONE.fullmatch(text):
        return False
    return 6 <= sum(ch.isdigit() for ch in text) <= 15


def csv_text(text: str, *, phone: bool = False) -> str:
    """``text`` as it is written to a CSV cell: with a ``'`` in front when a spreadsheet would run it as
    a formula (see the module). ``phone``: the column holds phone numbers."""
    if not text.lstrip("'").startswith(FORMULA_STARTS):
        return text
    if text[0] == "+" and (E164.fullmatch(text) or (phone and is_typed_phone(text))):
        return text
    return "'" + text


def read_csv_text(text: str) -> str:
    """The text :func:`csv_text` was given, from the text it wrote: one ``'`` taken away where it put one."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS):
        return text[1:]
    return text
