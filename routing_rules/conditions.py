"""Compile validated conditions into fast closures (at load time) plus an explain tree.

A compiled condition is a :class:`Cond`: ``test(ctx, clock)`` answers fast, where
``clock`` is ``(weekday, minute)`` in the rule set's time zone, computed once per
decision; ``explain(ctx, clock)`` says what was compared and with what result.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .model import RoutingContext
from .schema import WEEKDAYS, ConditionSpec

__all__ = ["Clock", "Cond", "Test", "compile_condition"]

Clock = tuple[int, int]  # (weekday 0=Mon, minute since local midnight)
Test = Callable[[RoutingContext, Clock], bool]
Getter = Callable[[RoutingContext], Any]


class Cond:
    """One node of a compiled condition tree."""

    __slots__ = ("children", "getter", "key", "test", "text_en", "text_ru")

    def __init__(
        self,
        key: str,
        test: Test,
        text_en: str,
        text_ru: str,
        getter: Getter | None = None,
        children: Sequence[Cond] = (),
    ) -> None:
        self.key = key
        self.test = test
        self.text_en = text_en
        self.text_ru = text_ru
        self.getter = getter
        self.children = tuple(children)

    def explain(self, ctx: RoutingContext, clock: Clock) -> dict[str, Any]:
        out: dict[str, Any] = {
            "condition": self.text_en,
            "condition_ru": self.text_ru,
            "result": bool(self.test(ctx, clock)),
        }
        if self.getter is not None:
            out["actual"] = self.getter(ctx)
        elif self.key == "weekday":
            out["actual"] = WEEKDAYS[clock[0]]
        elif self.key == "time":
            out["actual"] = f"{clock[1] // 60:02d}:{clock[1] % 60:02d}"
        if self.children:
            out["children"] = [c.explain(ctx, clock) for c in self.children]
        return out


def _utm(name: str) -> Getter:
    long = "utm_" + name

    def get(ctx: RoutingContext) -> Any:
        u = ctx.utm
        return u.get(name) or u.get(long) if u else None

    return get


def _client(attr: str) -> Getter:
    def get(ctx: RoutingContext) -> Any:
        c = ctx.client
        return getattr(c, attr) if c is not None else None

    return get


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())


# key -> (getter, English label, Russian label, match mode)
_FIELDS: dict[str, tuple[Getter, str, str, str]] = {
    "channel": (lambda c: c.channel, "channel", "канал", "exact"),
    "kind": (lambda c: c.kind, "event kind", "тип события", "exact"),
    "source": (lambda c: c.source, "source", "источник", "exact"),
    "called_number": (lambda c: c.called_number, "number called", "набранный номер", "digits"),
    "utm_source": (_utm("source"), "utm_source", "utm_source", "exact"),
    "utm_medium": (_utm("medium"), "utm_medium", "utm_medium", "exact"),
    "utm_campaign": (_utm("campaign"), "utm_campaign", "utm_campaign", "exact"),
    "country": (lambda c: c.country, "caller's country", "страна звонящего", "exact"),
    "region": (lambda c: c.region, "caller's region", "регион звонящего", "exact"),
    "email_domain": (lambda c: c.email_domain, "email domain", "домен почты", "domain"),
    "client_segment": (_client("all_segments"), "client segment", "сегмент клиента", "exact"),
    "client_status": (_client("status"), "client status", "статус клиента", "exact"),
    "client_kind": (_client("kind"), "client kind", "вид клиента", "exact"),
}


def _value_matcher(values: Sequence[str], mode: str) -> Callable[[Any], bool]:
    """Case-insensitive membership; a value ending in ``*`` is a prefix."""
    norm = _digits if mode == "digits" else (lambda v: str(v).strip().casefold())
    exact: set[str] = set()
    prefixes: list[str] = []
    for v in values:
        if v.endswith("*"):
            prefixes.append(norm(v[:-1]))
        else:
            exact.add(norm(v))
    pre = tuple(prefixes)
    frozen = frozenset(exact)

    if mode == "domain":

        def match_domain(value: Any) -> bool:
            if not value:
                return False
            d = str(value).casefold().rstrip(".")
            if d in frozen or (pre and d.startswith(pre)):
                return True
            parts = d.split(".")
            return any(".".join(parts[i:]) in frozen for i in range(1, len(parts) - 1))

        return match_domain

    if not pre:

        def match_exact(value: Any) -> bool:
            return value is not None and norm(value) in frozen

        return match_exact

    def match(value: Any) -> bool:
        if value is None:
            return False
        v = norm(value)
        return v in frozen or v.startswith(pre)

    return match


_DIRECT = frozenset({"channel", "kind", "source", "country", "region"})


def _leaf(key: str, values: list[str]) -> Cond:
    getter, en, ru, mode = _FIELDS[key]
    matcher = _value_matcher(values, mode)
    shown = ", ".join(values)
    test: Test
    if key in _DIRECT and not any(v.endswith("*") for v in values):
        # The hot path: one attribute, exact values, no helper calls.
        wanted = frozenset(v.strip().casefold() for v in values)

        def test(ctx: RoutingContext, clock: Clock) -> bool:
            v = getattr(ctx, key)
            return v is not None and v.casefold() in wanted

    elif key == "client_segment":  # a client may be in several segments: any of them

        def test(ctx: RoutingContext, clock: Clock) -> bool:
            c = ctx.client
            if c is None:
                return False
            if c.segment is not None and matcher(c.segment):
                return True
            for v in c.segments:
                if matcher(v):
                    return True
            return False

    else:

        def test(ctx: RoutingContext, clock: Clock) -> bool:
            return matcher(getter(ctx))

    return Cond(key, test, f"{en} is one of: {shown}", f"{ru}: {shown}", getter)


def _keywords(words: list[str], fields: list[str]) -> Cond:
    rx = re.compile("|".join(re.escape(w.strip()) for w in words if w.strip()), re.IGNORECASE)
    search = rx.search
    in_subject = "subject" in fields
    in_text = "text" in fields

    def test(ctx: RoutingContext, clock: Clock) -> bool:
        if in_subject and ctx.subject and search(ctx.subject):
            return True
        return bool(in_text and ctx.text and search(ctx.text))

    def getter(ctx: RoutingContext) -> Any:
        found: list[str] = []
        for f in fields:
            val = getattr(ctx, f)
            if val:
                found.extend(m.group(0) for m in rx.finditer(val))
        return found

    shown = ", ".join(words)
    where = " or ".join(fields)
    where_ru = " или ".join({"subject": "теме", "text": "тексте"}[f] for f in fields)
    return Cond(
        "keywords",
        test,
        f"{where} contains any of: {shown}",
        f"в {where_ru} есть одно из слов: {shown}",
        getter,
    )


def _window(spec: str) -> tuple[int, int]:
    a, b = (p.strip() for p in spec.split("-"))
    h1, m1 = a.split(":")
    h2, m2 = b.split(":")
    return int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)


def _time(spec: str) -> Cond:
    start, end = _window(spec)
    if start <= end:

        def test(ctx: RoutingContext, clock: Clock) -> bool:
            return start <= clock[1] < end

    else:  # over midnight

        def test(ctx: RoutingContext, clock: Clock) -> bool:
            return clock[1] >= start or clock[1] < end

    return Cond("time", test, f"local time within {spec}", f"местное время в интервале {spec}")


def _weekday(days: list[str]) -> Cond:
    wanted = frozenset(WEEKDAYS.index(d) for d in days)

    def test(ctx: RoutingContext, clock: Clock) -> bool:
        return clock[0] in wanted

    shown = ", ".join(days)
    return Cond("weekday", test, f"day of week is one of: {shown}", f"день недели: {shown}")


def _new_client(flag: bool) -> Cond:
    def test(ctx: RoutingContext, clock: Clock) -> bool:
        return ctx.is_new_client is flag

    return Cond(
        "new_client",
        test,
        "the client is new" if flag else "the client is known",
        "клиент новый" if flag else "клиент известный",
        lambda c: c.is_new_client,
    )


def _all(children: list[Cond]) -> Cond:
    tests = tuple(c.test for c in children)
    if len(tests) == 1:
        t0 = tests[0]
        test = t0
    elif len(tests) == 2:
        t1, t2 = tests

        def test(ctx: RoutingContext, clock: Clock) -> bool:
            return t1(ctx, clock) and t2(ctx, clock)

    else:

        def test(ctx: RoutingContext, clock: Clock) -> bool:
            for t in tests:
                if not t(ctx, clock):
                    return False
            return True

    return Cond(
        "all",
        test,
        "(" + " AND ".join(c.text_en for c in children) + ")",
        "(" + " И ".join(c.text_ru for c in children) + ")",
        children=children,
    )


def _any(children: list[Cond]) -> Cond:
    tests = tuple(c.test for c in children)

    def test(ctx: RoutingContext, clock: Clock) -> bool:
        for t in tests:
            if t(ctx, clock):
                return True
        return False

    return Cond(
        "any",
        test,
        "(" + " OR ".join(c.text_en for c in children) + ")",
        "(" + " ИЛИ ".join(c.text_ru for c in children) + ")",
        children=children,
    )


def _not(child: Cond) -> Cond:
    inner = child.test

    def test(ctx: RoutingContext, clock: Clock) -> bool:
        return not inner(ctx, clock)

    return Cond("not", test, f"NOT {child.text_en}", f"НЕ {child.text_ru}", children=[child])


def compile_condition(spec: ConditionSpec) -> Cond:
    """Turn a validated condition into a :class:`Cond` (all keys of one mapping AND-ed)."""
    parts: list[Cond] = []
    data = spec.model_dump(exclude_none=True, by_alias=False)
    for key in type(spec).model_fields:
        if key not in data:
            continue
        value = data[key]
        if key in _FIELDS:
            parts.append(_leaf(key, value))
        elif key == "keywords":
            parts.append(_keywords(value["words"], value["fields"]))
        elif key == "new_client":
            parts.append(_new_client(bool(value)))
        elif key == "weekday":
            parts.append(_weekday(value))
        elif key == "time":
            parts.append(_time(value))
        elif key == "any":
            assert spec.any is not None
            parts.append(_any([compile_condition(c) for c in spec.any]))
        elif key == "all":
            assert spec.all is not None
            parts.append(_all([compile_condition(c) for c in spec.all]))
        elif key == "not_":
            assert spec.not_ is not None
            parts.append(_not(compile_condition(spec.not_)))
    return parts[0] if len(parts) == 1 else _all(parts)
