"""Importing files into the CRM.

:mod:`crmkit.imports.sources` reads CSV, XLSX and JSON lines files record by record, in constant memory, and
tells for each record why it cannot be read; :mod:`crmkit.imports.values` turns the text of a cell into the
value a field stores, the way the user says their file writes dates, numbers, booleans and choices.
See ``docs/imports.md``.
"""
