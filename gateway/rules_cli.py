"""``crmhub rules check [FILE]`` and ``crmhub rules explain EVENT.json [--rules FILE]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_core.events import InboundEvent, NormalizeError
from gateway.settings import Settings
from routing_rules import Roster, RoutingState, RulesError, RuleSet, load_rules

__all__ = ["run_rules"]


def _load(path: str | None, settings: Settings) -> tuple[RuleSet, str]:
    path = path or settings.routing_rules_path
    if not path:
        return RuleSet.default(), "(built-in default)"
    if not Path(path).exists():
        raise FileNotFoundError(path)
    return load_rules(path), path


async def _roster_and_client(
    settings: Settings, event: InboundEvent
) -> tuple[Roster, RoutingState, Any]:
    """Read-only look at the database: the managers, pointers and the matched client."""
    from sqlalchemy import select

    from crm_core.db import Database
    from crm_core.models import RoutingPointer
    from crm_core.pipeline.match import match_event
    from crm_core.pipeline.rules_assigner import _client_info, build_roster

    db = Database(settings.database_url)
    try:
        async with db.sessions() as s:
            roster = await build_roster(s)
            pointers = {
                p.key: int(p.last_user_id)
                for p in await s.scalars(select(RoutingPointer))
                if p.last_user_id is not None
            }
            m = await match_event(s, event)
            client = await _client_info(s, m.client)
            await s.rollback()
        return roster, RoutingState(pointers), client
    except Exception:  # no database yet: explain against an empty roster
        return Roster([]), RoutingState(), None
    finally:
        await db.dispose()


def run_rules(args: argparse.Namespace, settings: Settings, emit: Callable[[Any], None]) -> int:
    if args.sub == "check":
        try:
            rules, where = _load(args.file, settings)
        except FileNotFoundError as exc:
            print(f"crmhub: rules file {exc.args[0]} does not exist", file=sys.stderr)
            return 2
        except RulesError as err:
            for line in err.format_lines():
                print(line, file=sys.stderr)
            return 1
        emit({"ok": True, "file": where, "rules": len(rules.rules)})
        return 0
    try:
        rules, _ = _load(args.rules, settings)
    except FileNotFoundError as exc:
        print(f"crmhub: rules file {exc.args[0]} does not exist", file=sys.stderr)
        return 2
    except RulesError as err:
        for line in err.format_lines():
            print(line, file=sys.stderr)
        return 1
    try:
        data = json.loads(Path(args.event).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise NormalizeError("the event file must hold one JSON object", "event")
        event = InboundEvent.from_json(data)
    except (OSError, ValueError) as exc:
        print(f"crmhub: cannot read event {args.event}: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    from crm_core.models import utcnow
    from crm_core.routing_context import explain_event

    roster, state, client = asyncio.run(_roster_and_client(settings, event))
    emit(explain_event(data, rules, roster, utcnow(), state, client))
    return 0
