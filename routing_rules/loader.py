"""Read ``routing.yaml``: YAML with marks, pydantic validation, errors with line and column."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .ruleset import RuleSet
from .schema import FileSpec

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_RULES_BYTES", "RulesError", "load_rules", "parse_rules"]

ErrorItem = tuple[int, int, str]

# Bounds of a rules document: a real file is a few hundred rules of a few dozen nodes.
# Anchors and aliases are refused outright (an alias "bomb" of a few hundred bytes
# expands to billions of nodes), so the work of a parse is bounded by the text's size.
MAX_RULES_BYTES = 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64


class RulesError(ValueError):
    """An invalid rules file.  ``errors`` = ``[(line, column, message), ...]``, 1-based."""

    def __init__(self, filename: str, errors: Sequence[ErrorItem]) -> None:
        self.filename = filename
        self.errors: list[ErrorItem] = sorted(set(errors))
        super().__init__(
            f"{filename}: {len(self.errors)} error(s)\n" + "\n".join(self.format_lines())
        )

    def format_lines(self) -> list[str]:
        return [f"{self.filename}:{line}:{col}: {msg}" for line, col, msg in self.errors]


class _Refused(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line: int = mark.line + 1 if mark else 1
        self.column: int = mark.column + 1 if mark else 1
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases and caps nodes and nesting depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                event.start_mark,
                f"YAML aliases are not allowed (*{event.anchor}): write the value out",
            )
        if getattr(event, "anchor", None) is not None:
            raise _Refused(
                event.start_mark,
                f"YAML anchors are not allowed (&{event.anchor}): write the value out",
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(event.start_mark, f"the document has more than {MAX_NODES} nodes")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            node: yaml.Node | None = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _find_key(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _locate(root: yaml.Node, loc: Sequence[int | str], at_key: bool) -> yaml.Node:
    """The YAML node a pydantic error location points at (skips non-YAML loc parts)."""
    node = root
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = _find_key(node, part)
            if found is not None:
                node = found[0] if (last and at_key) else found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
    return node


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part[:1].isalpha() or part[:1] == "_":
            if "[" in part:  # pydantic's union/function tags
                continue
            out += ("." if out else "") + part
    return out


def _duplicates(node: yaml.Node, errors: list[ErrorItem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    errors.append((*_mark(k), f"duplicate key '{k.value}'"))
                seen.add(k.value)
            _duplicates(v, errors)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _duplicates(item, errors)


def _duplicate_ids(root: yaml.Node, errors: list[ErrorItem]) -> None:
    rules = _find_key(root, "rules") if isinstance(root, yaml.MappingNode) else None
    if rules is None or not isinstance(rules[1], yaml.SequenceNode):
        return
    seen: dict[str, int] = {}
    for i, item in enumerate(rules[1].value):
        found = _find_key(item, "id") if isinstance(item, yaml.MappingNode) else None
        if found is None or not isinstance(found[1], yaml.ScalarNode):
            continue
        rid = found[1].value
        if rid in seen:
            msg = f"duplicate rule id '{rid}' (first at rule {seen[rid] + 1})"
            errors.append((*_mark(found[1]), msg))
        seen.setdefault(rid, i)


def _semantic(spec: FileSpec, root: yaml.Node, errors: list[ErrorItem]) -> None:
    assigns: list[tuple[tuple[int | str, ...], Any]] = [
        (("rules", i, "assign"), r.assign) for i, r in enumerate(spec.rules)
    ]
    if spec.default is not None:
        assigns.append((("default",), spec.default))
    for loc, assign in assigns:
        targets = [(loc, assign)] + [
            ((*loc, "fallback", j), f) for j, f in enumerate(assign.fallback)
        ]
        for tloc, target in targets:
            if target.list_ is not None and target.list_ not in spec.lists:
                node = _locate(root, (*tloc, "list"), False)
                msg = f"unknown list '{target.list_}' (define it under 'lists:')"
                errors.append((*_mark(node), msg))
            if target.strategy == "weighted" and target.user is not None:
                node = _locate(root, (*tloc, "strategy"), False)
                errors.append((*_mark(node), "weighted needs a pool, not a single user"))


def parse_rules(text: str, filename: str = "<string>") -> RuleSet:
    """Validate and compile a rules document; raise :class:`RulesError` listing every error."""
    errors: list[ErrorItem] = []
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RULES_BYTES:
        raise RulesError(
            filename, [(1, 1, f"the rules file is larger than {MAX_RULES_BYTES} bytes")]
        )
    try:
        loader = _BoundedLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except _Refused as exc:
        raise RulesError(filename, [(exc.line, exc.column, exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RulesError(filename, [(line, col, f"YAML syntax: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise RulesError(filename, [(1, 1, f"YAML: {exc}")]) from None
    if root is None or data is None:
        return RuleSet.from_spec(FileSpec(), filename, hashlib.sha256(text.encode()).hexdigest())
    if not isinstance(data, dict):
        raise RulesError(filename, [(*_mark(root), "the file must be a mapping with 'rules:'")])
    _duplicates(root, errors)
    _duplicate_ids(root, errors)
    try:
        spec = FileSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            extra = err["type"] == "extra_forbidden"
            node = _locate(root, loc, at_key=extra)
            msg = err["msg"].removeprefix("Value error, ")
            if extra:
                msg = f"unknown key '{loc[-1]}'"
            where = _path(loc)
            errors.append((*_mark(node), f"{where}: {msg}" if where else msg))
        raise RulesError(filename, errors) from None
    _semantic(spec, root, errors)
    if errors:
        raise RulesError(filename, errors)
    return RuleSet.from_spec(spec, filename, hashlib.sha256(text.encode()).hexdigest())


def load_rules(path: str | Path) -> RuleSet:
    """Read and compile a rules file (UTF-8).  Unreadable files raise :class:`RulesError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(str(p), [(1, 1, f"cannot read the file: {exc}")]) from None
    return parse_rules(text, str(p))
