"""The ``crmhub`` command line: serve, migrate, users, forms, demo, inbox, ingest, rules,
import, export."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from crm_core.db import Database, migrate
from gateway.settings import Settings, SettingsError, load_settings

__all__ = ["main"]


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def _fail(message: str, code: int = 2) -> int:
    print(f"crmhub: {message}", file=sys.stderr)
    return code


async def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[int]]) -> int:
    db = Database(settings.database_url)
    try:
        await migrate(db)
        return await fn(db)
    finally:
        await db.dispose()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import structlog
    from aiohttp import web

    from gateway.app import create_app
    from gateway.observability import configure_logging
    from gateway.server import server_options

    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    log = structlog.get_logger("crmhub.serve")
    web.run_app(
        app,
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        access_log=None,
        # Streams end in on_shutdown; this only bounds a request that does not finish.
        shutdown_timeout=max(settings.shutdown_drain_seconds, 5.0),
        print=lambda msg: log.info("serving", message=" ".join(msg.split())),
        **server_options(settings),
    )
    log.info("stopped")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Which hub process leads which connector, and which hub processes are connected."""
    from sqlalchemy import text as sql

    from gateway.leader import holders, lock_names

    async def run(db: Database) -> int:
        locks = lock_names(settings)
        held = await holders(db, list(locks.values()))
        processes: list[str] = []
        if db.is_postgres:
            async with db.engine.connect() as conn:
                rows = await conn.execute(
                    sql(
                        "SELECT DISTINCT application_name FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name LIKE 'crmhub %' "
                        "AND pid <> pg_backend_pid() ORDER BY 1"
                    )
                )
                processes = [r[0] for r in rows]
        _print(
            {
                "database": db.dialect,
                "processes": processes,
                "connectors": [
                    {"name": name, "lock": lock, "leader": held.get(lock)}
                    for name, lock in locks.items()
                ],
            }
        )
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        _print({"migrated": True, "database": db.dialect})
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.services.users import create_user

    async def run(db: Database) -> int:
        async with db.transaction() as s:
            user, token = await create_user(
                s,
                args.email,
                args.role,
                name=args.name,
                extension=args.extension,
                team=args.team,
            )
            out = {
                "id": user.id,
                "email": user.email,
                "role": user.role,
                "name": user.name,
                "team": user.team,
                "extension": user.extension,
                "token": token,
            }
        _print(out)
        return 0

    try:
        return asyncio.run(_with_db(settings, run))
    except ValueError as exc:
        return _fail(str(exc))


def cmd_users_state(args: argparse.Namespace, settings: Settings) -> int:
    """users deactivate | activate | rotate-token EMAIL: one JSON line on stdout."""
    from crm_core.services.users import rotate_token, set_active, user_by_email, user_dict

    async def run(db: Database) -> int:
        async with db.transaction() as s:
            user = await user_by_email(s, args.email)
            if args.sub == "rotate-token":
                user, token = await rotate_token(s, user)
                out = {**user_dict(user), "token": token}
            else:
                await set_active(s, user, args.sub == "activate")
                out = user_dict(user)
        _print(out)
        return 0

    try:
        return asyncio.run(_with_db(settings, run))
    except ValueError as exc:
        return _fail(str(exc))


def cmd_forms_add(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.services.forms import create_form

    aliases = {}
    for item in args.alias or []:
        field, sep, canonical = item.partition("=")
        if not sep:
            return _fail(f"--alias {item!r}: expected FIELD=CANONICAL, e.g. 'Ваш телефон=phone'")
        aliases[field] = canonical

    async def run(db: Database) -> int:
        async with db.transaction() as s:
            form = await create_form(s, args.name, aliases=aliases or None)
            out = {"id": form.id, "name": form.name, "key": form.key, "secret": form.secret}
        base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        out["url"] = f"{base}/hooks/forms/{out['key']}?secret={out['secret']}"
        _print(out)
        return 0

    try:
        return asyncio.run(_with_db(settings, run))
    except ValueError as exc:
        return _fail(str(exc))


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.demo import load_demo

    async def run(db: Database) -> int:
        _print(await load_demo(db))
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_inbox_list(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.services.inbox import list_inbox

    async def run(db: Database) -> int:
        for row in await list_inbox(db, failed=args.failed, limit=args.limit):
            _print(row)
        return 0

    return asyncio.run(_with_db(settings, run))


def cmd_inbox_replay(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.services.inbox import replay_event

    async def run(db: Database) -> int:
        result = await replay_event(
            db,
            args.id,
            callback_due_minutes=settings.callback_due_minutes,
            secret_key=settings.secret_key,
        )
        _print(result)
        return 0 if result.get("status") == "processed" else 1

    try:
        return asyncio.run(_with_db(settings, run))
    except LookupError as exc:
        return _fail(str(exc))


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.events import NormalizeError
    from gateway.ingest_cli import run_ingest

    try:
        return run_ingest(args, settings, _print)
    except NormalizeError as exc:
        return _fail(f"cannot understand {args.file}: {exc}".replace("\n", " "))
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {args.file}: {exc}")


def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.rules_cli import run_rules

    return run_rules(args, settings, _print)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.import_cli import run_import

    return run_import(args, settings, _print)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crmhub")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.export_cli import run_export

    return run_export(args, settings, _print)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crmhub", description="CRM with a communications hub")
    p.add_argument("--config", help="settings file (TOML); CRMHUB_* variables override it")
    p.add_argument("--version", action="version", version=f"crmhub {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the web service and its connectors")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.set_defaults(func=cmd_serve)

    sub.add_parser(
        "status", help="which hub process leads which connector (AMI, IMAP, Telegram)"
    ).set_defaults(func=cmd_status)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        func=cmd_migrate
    )

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="sub", required=True)
    ua = users.add_parser("add", help="add a user and print its API token")
    ua.add_argument("email")
    ua.add_argument("--role", required=True, choices=["admin", "supervisor", "manager"])
    ua.add_argument("--name")
    ua.add_argument("--extension")
    ua.add_argument("--team")
    ua.set_defaults(func=cmd_users_add)
    for name, text in (
        ("deactivate", "refuse the user's token; open live streams close within seconds"),
        ("activate", "let a deactivated user in again (same token)"),
        ("rotate-token", "give the user a new API token (printed once); the old one stops"),
    ):
        us = users.add_parser(name, help=text)
        us.add_argument("email")
        us.set_defaults(func=cmd_users_state)

    forms = sub.add_parser("forms", help="website forms").add_subparsers(dest="sub", required=True)
    fa = forms.add_parser("add", help="register a form and print its key and secret")
    fa.add_argument("name")
    fa.add_argument("--alias", action="append", help="FIELD=CANONICAL (name, phone, email...)")
    fa.set_defaults(func=cmd_forms_add)

    sub.add_parser("demo", help="load demo managers, clients and deals").set_defaults(func=cmd_demo)

    inbox = sub.add_parser("inbox", help="the inbound event inbox").add_subparsers(
        dest="sub", required=True
    )
    il = inbox.add_parser("list", help="list inbox events")
    il.add_argument("--failed", action="store_true", help="only failed events")
    il.add_argument("--limit", type=int, default=50)
    il.set_defaults(func=cmd_inbox_list)
    ir = inbox.add_parser("replay", help="process an event again")
    ir.add_argument("id", type=int)
    ir.set_defaults(func=cmd_inbox_replay)

    ing = sub.add_parser("ingest", help="run a stored payload through a channel's normalize step")
    ing.add_argument("channel", choices=["form", "ami", "email", "telegram", "vk"])
    ing.add_argument("file")
    ing.add_argument("--dry-run", action="store_true", help="normalize only; write nothing")
    ing.add_argument(
        "--content-type",
        default=None,
        help="form payloads: urlencoded, multipart or json (default: guessed from the body)",
    )
    ing.add_argument("--form-key", default=None, help="form payloads: the form's key")
    ing.add_argument("--name", default=None, help="PBX, bot or mailbox name")
    ing.set_defaults(func=cmd_ingest)

    rules = sub.add_parser("rules", help="routing rules").add_subparsers(dest="sub", required=True)
    rc = rules.add_parser("check", help="validate a rules file")
    rc.add_argument("file", nargs="?")
    rc.set_defaults(func=cmd_rules)
    rx = rules.add_parser("explain", help="show which rule matches an event and why")
    rx.add_argument("event")
    rx.add_argument("--rules")
    rx.set_defaults(func=cmd_rules)

    from gateway.import_cli import add_import_parser

    add_import_parser(sub, cmd_import)
    from gateway.export_cli import add_export_parser

    add_export_parser(sub, cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        return _fail(str(exc))
    if args.func is not cmd_serve:  # serve configures its own; logs never go to stdout
        from gateway.observability import configure_logging

        configure_logging(settings.log_format, settings.log_level, stdlib=False)
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
