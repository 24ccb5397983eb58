"""Routing rules: the schema of ``routing.yaml``, its loader and the pure ``decide`` engine.

Imports only the standard library, pydantic and PyYAML.
"""

from .engine import decide, decide_answered
from .explain import explain
from .loader import RulesError, load_rules, parse_rules
from .model import (
    Absence,
    ClientInfo,
    Decision,
    Member,
    Roster,
    RoutingContext,
    RoutingState,
    TaskSpec,
)
from .ruleset import DEFAULT_RULE_ID, RuleSet
from .watcher import RulesWatcher

__all__ = [
    "DEFAULT_RULE_ID",
    "Absence",
    "ClientInfo",
    "Decision",
    "Member",
    "Roster",
    "RoutingContext",
    "RoutingState",
    "RuleSet",
    "RulesError",
    "RulesWatcher",
    "TaskSpec",
    "decide",
    "decide_answered",
    "explain",
    "load_rules",
    "parse_rules",
]
