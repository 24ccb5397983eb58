"""CRM services: plain async functions taking a session and an ``Actor``.

Each module owns one resource (users, forms, clients, contacts, leads, deals, tasks,
timeline, segments).  Errors are :mod:`crm_core.services.common` exceptions carrying
the offending field; callers run each request in one transaction, so an error changes
nothing.
"""

__all__: list[str] = []
