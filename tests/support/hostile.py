"""Hypothesis strategies for realistic-but-hostile channel payloads (issue 10 item 18).

:func:`mutated_tree` starts from a recorded fixture (a JSON tree) and applies a few
mutations at paths that exist in it: a value replaced by a hostile one (wrong type,
huge or negative number, digits that are not ASCII, control characters, deep nesting),
a key deleted, a scalar turned into its string or a container into the other kind, a
sibling key added.  So most examples keep the shape the normalizer expects and reach
its deep branches, instead of being rejected at the first check like random text.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

__all__ = ["HOSTILE_STRINGS", "assert_event_ok", "hostile_values", "mutated_tree", "paths_of"]

Path = tuple[Any, ...]

HOSTILE_STRINGS = [
    "",
    " ",
    "0",
    "-1",
    "-",
    "²",  # str.isdigit() is True, int() fails
    "١٢٣",  # Arabic-Indic digits: isdigit() and int() accept them
    "9" * 40,
    "1e308",
    "nan",
    "inf",
    "-0",
    "\x00",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "<script>alert(1)</script>",
    "/start " + "A" * 300,
    "+7 (916) 555-12-34",
    "ivan@example.ru",
    "null",
    "True",
    "2026-13-45T99:99:99",
    "%s%n{0}{x}",
]
HOSTILE_NUMBERS = [
    0,
    -1,
    1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -(10**30),
    1.5,
    -0.0,
    1e308,
    -1e308,
    4102444800,  # 2100-01-01
    253402300800,  # year 10000
]


def _deep(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


def hostile_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.sampled_from([None, True, False])
        | st.sampled_from(HOSTILE_NUMBERS)
        | st.sampled_from(HOSTILE_STRINGS)
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=30)
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.text(max_size=8), scalars, max_size=3),
        st.sampled_from([[], {}, [None], [{}], {"": None}, _deep(40), _deep(200)]),
    )


def paths_of(tree: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a node (the root excluded, 40 levels at most), parents first."""
    out: list[Path] = []
    if len(prefix) >= 40:
        return out
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.append((*prefix, key))
            out.extend(paths_of(value, (*prefix, key)))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out.append((*prefix, i))
            out.extend(paths_of(value, (*prefix, i)))
    return out


def _parent(tree: Any, path: Path) -> Any:
    node = tree
    for step in path[:-1]:
        node = node[step]
    return node


def _exists(tree: Any, path: Path) -> bool:
    node = tree
    for step in path:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
        else:
            return False
    return True


def _flip(value: Any) -> Any:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return [value]
    return "null"


Mutation = tuple[str, int, Any, str]


def _apply(tree: Any, mutations: list[Mutation]) -> Any:
    out = copy.deepcopy(tree)
    for op, where, shared, key in mutations:
        # a fresh copy: the strategies hand out shared constants (``[{}]``, ``_deep(40)``),
        # and adding into one of them would make it (and later examples) circular
        value = copy.deepcopy(shared)
        paths = [p for p in paths_of(out) if _exists(out, p)]
        if not paths:
            return out
        path = paths[where % len(paths)]
        parent = _parent(out, path)
        last = path[-1]
        if op == "replace":
            parent[last] = value
        elif op == "flip":
            parent[last] = _flip(parent[last])
        elif op == "delete":
            if isinstance(parent, dict):
                del parent[last]
            else:
                parent.pop(last)
        elif op == "add" and isinstance(parent, dict):
            parent[key] = value
        elif op == "add" and isinstance(parent, list):
            parent.append(value)
    return out


def mutated_tree(
    fixtures: list[Any], *, extra_keys: list[str] | None = None, max_mutations: int = 4
) -> st.SearchStrategy[Any]:
    """A fixture from ``fixtures`` with 0..``max_mutations`` mutations."""
    keys = st.sampled_from(extra_keys) if extra_keys else st.text(min_size=1, max_size=12)
    mutation = st.tuples(
        st.sampled_from(["replace", "replace", "flip", "delete", "add"]),
        st.integers(min_value=0, max_value=10_000),
        hostile_values(),
        keys,
    )
    build: Callable[[Any, list[Mutation]], Any] = _apply
    return st.builds(
        build,
        st.sampled_from(fixtures),
        st.lists(mutation, max_size=max_mutations),
    )


def assert_event_ok(event: Any) -> None:
    """What the pipeline needs of a normalized event: it serializes, raw included."""
    import json

    from crm_core.events import InboundEvent

    assert isinstance(event, InboundEvent)
    assert event.external_id and isinstance(event.external_id, str)
    assert all(isinstance(i, str) and ":" in i for i in event.identities)
    assert event.occurred_at.tzinfo is not None
    json.dumps(event.to_json(with_raw=True), ensure_ascii=False)
