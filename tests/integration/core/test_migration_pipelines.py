"""Migration 0008_pipelines keeps every deal and its stage changes: down to 0005, deals
written there (the seven fixed stages, free-text loss reasons), then up again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import func, select, text

from crm_core.access import Actor
from crm_core.db import Database, _alembic_config, migrate
from crm_core.models import Deal, DealStageChange, LossReason, Pipeline, PipelineStage
from crm_core.services import analytics
from crm_core.services.deals import deal_dicts, move_stage

ADMIN = Actor(1, "admin")
STAGES = ("new", "qualification", "proposal", "negotiation", "contract", "won", "lost")


async def test_migration_turns_the_stages_into_the_default_pipeline(db: Database) -> None:
    async with db.engine.connect() as conn:
        await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0005_imports"))
        await conn.commit()
    at = "'2026-01-05 10:00:00'"
    async with db.engine.begin() as conn:
        assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0005_imports"
        await conn.execute(
            text(
                "INSERT INTO users (id, email, name, role, token_hash, active, timezone, "
                "working_hours, absences, weight, locale, created_at) VALUES (1, 'a@x.ru', "
                f"'A', 'admin', 'h1', true, 'UTC', '{{}}', '[]', 1, 'ru', {at})"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO clients (id, kind, name, status, owner_id, notes, created_at, "
                f"updated_at) VALUES (1, 'company', 'Клён', 'cold', 1, '', {at}, {at})"
            )
        )
        for i, stage in enumerate(STAGES, start=1):
            reason = {"lost": "'дорого'"}.get(stage, "NULL")
            await conn.execute(
                text(
                    "INSERT INTO deals (id, client_id, title, stage, amount, currency, owner_id, "
                    f"loss_reason, created_at, updated_at) VALUES ({i}, 1, 'D{i}', '{stage}', "
                    f"{i * 100}, 'RUB', 1, {reason}, {at}, {at})"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO deal_stage_changes (deal_id, from_stage, to_stage, user_id, at) "
                    f"VALUES ({i}, NULL, 'new', 1, {at})"
                )
            )
            if stage != "new":
                await conn.execute(
                    text(
                        "INSERT INTO deal_stage_changes (deal_id, from_stage, to_stage, user_id, "
                        f"at) VALUES ({i}, 'new', '{stage}', 1, {at})"
                    )
                )
        if db.is_postgres:
            for table in ("users", "clients", "deals"):
                await conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    await migrate(db)

    async with db.sessions() as s:
        default = (await s.scalars(select(Pipeline).where(Pipeline.is_default))).all()
        assert len(default) == 1
        pid = default[0].id
        codes = await s.scalars(
            select(PipelineStage.code)
            .where(PipelineStage.pipeline_id == pid)
            .order_by(PipelineStage.position)
        )
        assert tuple(codes) == STAGES
        deals = (await s.scalars(select(Deal).order_by(Deal.id))).all()
        assert [(d.id, d.stage, d.pipeline_id) for d in deals] == [
            (i, stage, pid) for i, stage in enumerate(STAGES, start=1)
        ]
        assert await s.scalar(select(func.count()).select_from(DealStageChange)) == 13
        lost = deals[-1]
        reason = await s.get(LossReason, lost.loss_reason_id)
        assert reason is not None and reason.name == "дорого" and lost.loss_reason == "дорого"
        out = await deal_dicts(s, list(deals))
        assert [d["stage_label"] for d in out][:2] == ["Новая", "Квалификация"]
        f = await analytics.funnel(s, ADMIN, None, None)
        assert f["pipeline_id"] == pid
        assert (f["deals_created"], f["won"], f["lost"], f["won_amount"]) == (7, 1, 1, "600.00")
        assert [st["reached"] for st in f["stages"]] == [7, 5, 4, 3, 2, 1]
        assert f["stages"][0]["loss_reasons"] == {"дорого": 1}
    async with db.transaction() as s:
        moved = await move_stage(s, ADMIN, 1, "proposal")  # the old deals keep moving
        assert moved.stage == "proposal"
