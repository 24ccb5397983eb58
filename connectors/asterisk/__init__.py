"""Asterisk AMI connector: call tracking keyed by Linkedid, click-to-call via Originate.

Public API used by the gateway:

* :class:`AsteriskSettings` - one ``[[asterisk]]`` table.
* :class:`AsteriskConnector` - ``AsteriskConnector(settings, ingest, health, on_live=None)``,
  ``await run()`` (cancel to stop), ``await originate(...)``.
* :class:`AsteriskOutbound` - the outbox executor for ``channel="call"``, kind ``originate``.
* :func:`dry_run` - ``crmhub ingest ami FILE --dry-run``.
* :class:`LinkFeed` - what one AMI link says -> call updates (the live link and the
  dry-run share it, with the one parser ``AMIParser``).
"""

from connectors.asterisk.config import DEFAULT_EVENTS, AsteriskSettings
from connectors.asterisk.connector import AsteriskConnector, filter_expressions
from connectors.asterisk.dry_run import derive_updates, dry_run, events_from_transcript
from connectors.asterisk.model import CallRecord, CallUpdate
from connectors.asterisk.normalize import to_event, to_summary
from connectors.asterisk.outbound import (
    AsteriskOutbound,
    OriginateRejected,
    PBXUnavailable,
    build_originate,
    dial_string,
)
from connectors.asterisk.protocol import AMIParser, AMIProtocolError
from connectors.asterisk.tracking import CALL_ID_VARIABLE, CallTracker
from connectors.asterisk.tracking_link import LinkFeed

__all__ = [
    "CALL_ID_VARIABLE",
    "DEFAULT_EVENTS",
    "AMIParser",
    "AMIProtocolError",
    "AsteriskConnector",
    "AsteriskOutbound",
    "AsteriskSettings",
    "CallRecord",
    "CallTracker",
    "CallUpdate",
    "LinkFeed",
    "OriginateRejected",
    "PBXUnavailable",
    "build_originate",
    "derive_updates",
    "dial_string",
    "dry_run",
    "events_from_transcript",
    "filter_expressions",
    "to_event",
    "to_summary",
]
