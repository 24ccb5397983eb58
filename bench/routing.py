"""Benchmark: routing decisions per second, 50 rules and 200 users, one core.

Compares ``routing_rules.decide`` (compiled rules, reasons, pointer updates) with a
bare loop evaluating the same conditions and the same availability checks in plain
Python, measured in the same run.  Prints both and their ratio; the last line is one
JSON object with ``ratio``, ``decisions_per_s`` and ``bare_decisions_per_s``.

    .venv/bin/python bench/routing.py [--decisions 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time as _time
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing_rules import (
    Absence,
    ClientInfo,
    Member,
    Roster,
    RoutingContext,
    RoutingState,
    decide,
    parse_rules,
)

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # Wednesday 10:00 Moscow
TEAMS = [f"team_{i}" for i in range(10)]
REGIONS = [
    "Москва",
    "Санкт-Петербург",
    "Свердловская область",
    "Краснодарский край",
    "Новосибирская область",
    "Республика Татарстан",
]
STRATEGIES = ["round_robin", "least_loaded", "weighted", "round_robin"]


def rule_specs() -> list[dict[str, Any]]:
    """50 rules as plain data: used to write the YAML and by the bare loop."""
    out: list[dict[str, Any]] = []
    for i in range(49):
        t = i % 5
        cond: dict[str, Any]
        if t == 0:
            cond = {"channel": ["call"], "utm_source": [f"src{i}"]}
        elif t == 1:
            cond = {
                "region": [REGIONS[i % len(REGIONS)]],
                "channel": ["webform", "email"],
                "utm_medium": [f"med{i}"],
            }
        elif t == 2:
            cond = {"channel": ["email"], "keywords": [f"слово{i}", f"word{i}"]}
        elif t == 3:
            cond = {"any": [{"utm_campaign": [f"camp{i}*"]}, {"email_domain": [f"dom{i}.ru"]}]}
        else:
            cond = {
                "client_segment": [f"seg{i}"],
                "new_client": False,
                "weekday": ["mon", "tue", "wed", "thu", "fri"],
                "time": "09:00-18:00",
            }
        out.append(
            {"id": f"rule-{i}", "when": cond, "team": TEAMS[i % 10], "strategy": STRATEGIES[i % 4]}
        )
    out.append({"id": "catch-all", "when": None, "team": None, "strategy": "round_robin"})
    return out


def to_yaml(specs: list[dict[str, Any]]) -> str:
    lines = ["version: 1", "timezone: Europe/Moscow", "rules:"]
    for r in specs:
        lines.append(f"  - id: {r['id']}")
        if r["when"] is not None:
            lines.append(f"    when: {json.dumps(r['when'], ensure_ascii=False)}")
        if r["team"] is None:
            lines.append("    assign: {role: manager, strategy: round_robin}")
        else:
            lines.append(
                f"    assign: {{team: {r['team']}, strategy: {r['strategy']}, "
                "fallback: [{role: manager, strategy: round_robin}]}"
            )
        lines.append("    tags: [bench]")
    return "\n".join(lines) + "\n"


def members(rng: random.Random) -> list[Member]:
    out = []
    for uid in range(1, 201):
        hours = {d: [(time(9), time(18))] for d in range(5)} if rng.random() < 0.7 else {}
        absent = (Absence(date(2026, 11, 20), date(2026, 11, 30)),) if rng.random() < 0.05 else ()
        out.append(
            Member(
                uid,
                f"user{uid}",
                teams=(TEAMS[uid % 10],),
                timezone="Asia/Yekaterinburg" if uid % 7 == 0 else "Europe/Moscow",
                working_hours=hours,
                absences=absent,
                active=rng.random() > 0.05,
                capacity=20,
                load=rng.randint(0, 24),
                weight=rng.randint(1, 3),
            )
        )
    return out


def contexts(rng: random.Random, n: int) -> list[RoutingContext]:
    out = []
    for _ in range(n):
        i = rng.randrange(60)  # i >= 49: nothing specific, goes to the catch-all
        known = rng.random() < 0.5
        out.append(
            RoutingContext(
                channel=rng.choice(["call", "email", "webform", "telegram"]),
                kind="x",
                utm={"source": f"src{i}", "medium": f"med{i}", "campaign": f"camp{i}_x"},
                region=rng.choice(REGIONS),
                email_domain=f"dom{rng.randrange(60)}.ru",
                subject=f"Тема word{rng.randrange(60)}",
                text="Добрый день, хотим узнать цену",
                client=ClientInfo(1, segment=f"seg{i}", owner_id=5) if known else None,
                is_new_client=not known,
            )
        )
    return out


# ---- the bare loop: the same conditions and checks, hand-written -------------------


def bare_compile(specs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    def leaf(c: dict[str, Any]) -> dict[str, Any]:
        return {
            k: ({str(x).lower() for x in v} if isinstance(v, list) and k != "any" else v)
            for k, v in c.items()
        }

    return [
        (r["id"], leaf(r["when"]) if r["when"] else None, r["team"], r["strategy"]) for r in specs
    ]


def bare_match(c: dict[str, Any], ctx: RoutingContext, wd: int, minute: int) -> bool:
    for k, v in c.items():
        if k == "channel":
            ok = ctx.channel in v
        elif k in ("utm_source", "utm_medium"):
            ok = (ctx.utm.get(k[4:]) or "").lower() in v
        elif k == "region":
            ok = (ctx.region or "").casefold() in v
        elif k == "keywords":
            s = (ctx.subject or "").lower() + "\n" + (ctx.text or "").lower()
            ok = any(w in s for w in v)
        elif k == "any":
            camp = (ctx.utm.get("campaign") or "").lower()
            ok = any(camp.startswith(p.rstrip("*")) for p in v[0]["utm_campaign"]) or (
                (ctx.email_domain or "") in set(v[1]["email_domain"])
            )
        elif k == "client_segment":
            ok = ctx.client is not None and (ctx.client.segment or "").lower() in v
        elif k == "new_client":
            ok = ctx.is_new_client == v
        elif k == "weekday":
            ok = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[wd] in v
        elif k == "time":
            ok = 540 <= minute < 1080
        else:
            ok = False
        if not ok:
            return False
    return True


def bare_available(m: Member, now: datetime) -> bool:
    if not m.active or (m.capacity is not None and m.load >= m.capacity):
        return False
    local = now.astimezone(ZoneInfo(m.timezone))
    if any(a.start <= local.date() <= a.end for a in m.absences):
        return False
    return m.working_at(local.weekday(), local.hour * 60 + local.minute)


def bare_decide(
    rules: list[tuple[Any, ...]],
    by_team: dict[str | None, list[Member]],
    ctx: RoutingContext,
    now: datetime,
    pointers: dict[str, int],
) -> int | None:
    local = now.astimezone(ZoneInfo("Europe/Moscow"))
    wd, minute = local.weekday(), local.hour * 60 + local.minute
    for _rid, cond, team, strategy in rules:
        if cond is not None and not bare_match(cond, ctx, wd, minute):
            continue
        for pool_team, strat in ((team, strategy), (None, "round_robin")):
            pool = by_team[pool_team]
            key = f"{strat}:{pool_team}"
            last = pointers.get(key, 0)
            ordered = [m for m in pool if m.user_id > last] + [m for m in pool if m.user_id <= last]
            if strat == "least_loaded":
                avail = [m for m in ordered if bare_available(m, now)]
                chosen = min(avail, key=lambda m: m.load) if avail else None
            else:
                chosen = next((m for m in ordered if bare_available(m, now)), None)
            if chosen is not None:
                pointers[key] = chosen.user_id
                return chosen.user_id
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(6)
    specs = rule_specs()
    ruleset = parse_rules(to_yaml(specs), "bench.yaml")
    team_members = members(rng)
    roster = Roster(team_members)
    ctxs = contexts(rng, 1000)
    bare_rules = bare_compile(specs)
    by_team: dict[str | None, list[Member]] = {
        t: [m for m in team_members if t in m.teams] for t in TEAMS
    }
    by_team[None] = sorted(team_members, key=lambda m: m.user_id)
    n = args.decisions
    nctx = len(ctxs)

    def run_engine() -> float:
        pointers: dict[str, int] = {}
        t0 = _time.perf_counter()
        for i in range(n):
            d = decide(
                ctxs[i % nctx],
                ruleset,
                roster,
                NOW + timedelta(seconds=i % 60),
                RoutingState(pointers),
            )
            pointers.update(d.pointer_updates)
        return _time.perf_counter() - t0

    def run_bare() -> float:
        pointers: dict[str, int] = {}
        t0 = _time.perf_counter()
        for i in range(n):
            bare_decide(
                bare_rules, by_team, ctxs[i % nctx], NOW + timedelta(seconds=i % 60), pointers
            )
        return _time.perf_counter() - t0

    engine_t, bare_t = [], []
    for _ in range(args.repeat):  # interleaved, best of
        engine_t.append(run_engine())
        bare_t.append(run_bare())
    dps = n / min(engine_t)
    bare_dps = n / min(bare_t)
    matched: dict[str, int] = {}
    for c in ctxs:
        rid = decide(c, ruleset, roster, NOW).rule_id
        matched[rid] = matched.get(rid, 0) + 1
    print(
        f"rules: {len(ruleset)}, users: {len(roster)}, contexts: {nctx}, "
        f"decisions per run: {n}, best of {args.repeat}"
    )
    print(
        f"catch-all share: {matched.get('catch-all', 0) / nctx:.0%}, "
        f"distinct rules hit: {len(matched)}"
    )
    print(f"engine decide(): {dps:,.0f} decisions/s")
    print(f"bare loop:       {bare_dps:,.0f} decisions/s")
    print(f"ratio engine/bare: {dps / bare_dps:.2f}")
    print(
        json.dumps(
            {
                "ratio": round(dps / bare_dps, 3),
                "decisions_per_s": round(dps),
                "bare_decisions_per_s": round(bare_dps),
            }
        )
    )


if __name__ == "__main__":
    main()
