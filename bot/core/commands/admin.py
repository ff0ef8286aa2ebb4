"""/retrain and /model: for admins only (the table marks them; each handler checks too)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core.context import Context
from bot.core.ports import RetrainStatus
from bot.core.types import Field, Reply, Request

MODEL_USAGE = "/model [reload]  (admins)"


def when(iso: str | None) -> str:
    """``2025-05-01T12:00:00+00:00`` -> ``2025-05-01 12:00 UTC``."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:16] + " UTC" if "T" in iso else iso


async def retrain(ctx: Context, request: Request) -> Reply:
    caller = request.caller
    if not ctx.is_admin(caller):
        return Reply("Only admins can retrain the model.", kind="denied", ephemeral=True)
    if ctx.retrain is None:
        return Reply("Retraining is not configured in this process.", kind="error")
    await asyncio.to_thread(ctx.store.audit.record, caller.key, "retrain_request")
    ticket = await ctx.retrain.request("admin", caller.key, ctx.senders.notifier(caller))
    if ticket.started:
        text = f"Retraining started (run #{ticket.run_id}). I'll tell you here how it went."
    elif ticket.run_id is None:  # refused before any run existed (e.g. a read-only model folder)
        return Reply(ticket.message or "Retraining could not start.", kind="error")
    else:
        since = f"started {when(ticket.started_at)}" if ticket.started_at else "in progress"
        text = f"Already running ({since}{', ' + ticket.progress if ticket.progress else ''})."
    return Reply(text + (f"\n{ticket.message}" if ticket.message else ""))


async def model(ctx: Context, request: Request) -> Reply:
    if not ctx.is_admin(request.caller):
        return Reply("Only admins can see the model status.", kind="denied", ephemeral=True)
    action = request.text.strip().lower()
    if action == "reload":
        if ctx.retrain is None:
            return Reply("Retraining is not configured in this process.", kind="error")
        await asyncio.to_thread(ctx.store.audit.record, request.caller.key, "model_reload")
        return Reply(await ctx.retrain.reload())
    if action:
        return Reply(f"Usage: {MODEL_USAGE}", kind="error", ephemeral=True)
    if ctx.retrain is not None:
        status = await ctx.retrain.status()
    else:
        status = await asyncio.to_thread(_status_from_storage, ctx)
    fields = [*_serving_fields(status), *_run_fields(status)]
    if status.next_run:
        next_run = when(status.next_run)
    else:
        next_run = "not scheduled" + ("" if ctx.retrain else " (retraining is not configured)")
    fields.append(Field("Next run", next_run))
    return Reply(
        "\n".join(f"{f.name}: {f.value}" for f in fields), title="Model", fields=tuple(fields)
    )


def _serving_fields(status: RetrainStatus) -> list[Field]:
    if not status.serving_version:
        return [Field("Serving", "no model trained yet")]
    trained = f", trained {when(status.trained_at)}" if status.trained_at else ""
    fields = [Field("Serving", f"version {status.serving_version}{trained}")]
    if status.serving_metrics:
        fields.append(Field("Metrics", _metrics(status.serving_metrics)))
    return fields


def _metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(metrics.items())
    )


def _run_fields(status: RetrainStatus) -> list[Field]:
    fields = []
    if status.running:
        r = status.running
        progress = f", {r.progress}" if r.progress else ""
        fields.append(Field("Running", f"run #{r.run_id} started {when(r.started_at)}{progress}"))
    run = status.last_run
    if run:
        fields.append(
            Field(
                "Last run",
                f"#{run.id} ({run.trigger}) "
                f"{run.status}, {run.decision or 'no decision'}, "
                f"started {when(run.started_at)}",
            )
        )
    else:
        fields.append(Field("Last run", "none yet"))
    return fields


def _status_from_storage(ctx: Context) -> RetrainStatus:
    info = ctx.recommender.info() if ctx.recommender.ready else None
    runs = ctx.store.runs.recent(limit=1)
    last = runs[0] if runs else None
    if info is not None:
        return RetrainStatus(info.version, info.path, dict(info.metrics), info.trained_at, last)
    row = ctx.store.versions.serving()
    if row is not None:
        return RetrainStatus(
            str(row.id),
            row.path,
            row.metrics or {},
            row.promoted_at or row.created_at,
            last,
        )
    return RetrainStatus(last_run=last)
