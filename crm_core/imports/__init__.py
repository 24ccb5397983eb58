"""Client base import: read a spreadsheet into rows (pure), then write them
(``crm_core.services.imports``)."""
