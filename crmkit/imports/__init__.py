"""Importing files into the CRM.

:mod:`crmkit.imports.sources` reads CSV, XLSX and JSON lines files record by record, in constant memory, and
tells for each record why it cannot be read; :mod:`crmkit.imports.values` turns the text of a cell into the
value a field stores, the way the user says their file writes dates, numbers, booleans and choices.
:mod:`crmkit.imports.mapping` maps a file's columns onto fields, :mod:`crmkit.imports.customers` applies a
line to the customers, :mod:`crmkit.imports.activities` runs a plugin's importer, and
:mod:`crmkit.imports.service` (``crm.imports``) records every import and reverts one. See ``docs/imports.md``.
"""
