"""Website-form connector: ``POST /hooks/forms/{form_key}`` (Tilda, Elementor, CF7,
Google Apps Script, plain HTML forms) -> ``webform``/``form_submitted`` events.

Gateway wiring::

    app.router.add_routes(form_routes(registry, ingest, limits=WebformLimits(), on_spam=count))

``crmhub ingest form FILE --dry-run`` prints :func:`dry_run`'s result.
"""

from connectors.webforms.config import (
    DEFAULT_HONEYPOT_FIELDS,
    FormRegistry,
    FormSpec,
    InMemoryFormRegistry,
    WebformLimits,
)
from connectors.webforms.connector import RateLimiter, form_routes, form_webhook
from connectors.webforms.dry_run import dry_run, load_event
from connectors.webforms.normalize import is_tilda_handshake, normalize_form
from connectors.webforms.parsing import ParsedBody, parse_body, parse_body_full

__all__ = [
    "DEFAULT_HONEYPOT_FIELDS",
    "FormRegistry",
    "FormSpec",
    "InMemoryFormRegistry",
    "ParsedBody",
    "RateLimiter",
    "WebformLimits",
    "dry_run",
    "form_routes",
    "form_webhook",
    "is_tilda_handshake",
    "load_event",
    "normalize_form",
    "parse_body",
    "parse_body_full",
]
