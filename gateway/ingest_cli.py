"""``crmhub ingest CHANNEL FILE [--dry-run]``: a stored payload through a channel's
normalize step and, without ``--dry-run``, through the pipeline."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from crm_core.db import Database, migrate
from crm_core.events import InboundEvent, NormalizeError
from crm_core.hub import Hub
from crm_core.pipeline.process import PipelineConfig
from gateway.settings import Settings

__all__ = ["normalize_file", "run_ingest"]


def normalize_file(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One JSON-able dict per derived event (AMI transcripts derive several)."""
    path = args.file
    if args.channel == "form":
        from connectors.webforms.dry_run import dry_run as form_dry_run

        return [
            form_dry_run(
                path,
                content_type=args.content_type,
                form_key=args.form_key or "dry-run",
            )
        ]
    if args.channel == "ami":
        from connectors.asterisk.dry_run import dry_run as ami_dry_run

        return list(ami_dry_run(path))
    if args.channel == "email":
        from connectors.email.dry_run import dry_run as email_dry_run

        return [email_dry_run(path)]
    if args.channel == "telegram":
        from connectors.telegram import dry_run as tg_dry_run

        return [tg_dry_run(path)]
    if args.channel == "vk":
        from connectors.vk import dry_run as vk_dry_run

        return [vk_dry_run(path)]
    raise NormalizeError(f"unknown channel {args.channel!r}", "channel")


def _ami_events(args: argparse.Namespace, settings: Settings) -> list[InboundEvent]:
    """The transcript's call events, read with the named (or first) PBX's settings:
    inbound contexts, trunk patterns, region and recording links as ``serve`` would."""
    from connectors.asterisk import events_from_transcript

    pbx = next((p for p in settings.asterisk if p.name == args.name), None)
    if pbx is None and args.name is None and settings.asterisk:
        pbx = settings.asterisk[0]
    if pbx is None:
        return list(events_from_transcript(args.file, pbx_name=args.name or "pbx"))
    return list(
        events_from_transcript(
            args.file,
            pbx_name=pbx.name,
            inbound_contexts=pbx.inbound_contexts,
            trunk_channel_patterns=pbx.trunk_channel_patterns,
            region=pbx.region,
            recording_url_template=pbx.recording_url_template,
        )
    )


def _events_for_pipeline(
    args: argparse.Namespace, printed: list[dict[str, Any]], settings: Settings
) -> list[InboundEvent]:
    if args.channel == "ami":
        return _ami_events(args, settings)
    events = []
    for item in printed:
        if item.get("kind") == "confirmation":
            continue
        events.append(InboundEvent.from_json(item))
    return events


async def _pipeline(settings: Settings, events: list[InboundEvent]) -> list[dict[str, Any]]:
    db = Database(settings.database_url)
    try:
        await migrate(db)
        from gateway.routing import assigner_for_cli

        hub = Hub(
            db,
            cfg=PipelineConfig(
                callback_due_minutes=settings.callback_due_minutes,
                attachments_dir=settings.attachments_dir,
                secret_key=settings.secret_key,
            ),
            assigner=assigner_for_cli(settings, db),
            wait_timeout=30,
        )
        await hub.start()
        out = []
        try:
            for ev in events:
                r = await hub(ev, wait=True)
                out.append(
                    {
                        "event_id": r.event_id,
                        "duplicate": r.duplicate,
                        "status": r.status,
                        "lead_id": r.lead_id,
                        "client_id": r.client_id,
                        "interaction_id": r.interaction_id,
                        "error": r.error,
                    }
                )
        finally:
            await hub.stop()
        return out
    finally:
        await db.dispose()


def run_ingest(args: argparse.Namespace, settings: Settings, emit: Callable[[Any], None]) -> int:
    printed = normalize_file(args)
    if args.dry_run:
        for item in printed:
            emit(item)
        return 0
    events = _events_for_pipeline(args, printed, settings)
    receipts = asyncio.run(_pipeline(settings, events))
    for ev, receipt in zip(events, receipts, strict=True):
        emit({**ev.to_json(), "result": receipt})
    return 0 if all(r["status"] == "processed" for r in receipts) else 1
