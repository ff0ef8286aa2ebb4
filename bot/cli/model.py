"""Model commands: `anirec train` (from the database) and `anirec evaluate` (unseen users)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from bot.cli.common import app, console, open_store, out, progress_bar, settings


@app.command()
def train(
    device: str = typer.Option(
        None, "--device", help="auto | cpu | cuda | xla (default: settings)"
    ),
    config: str = typer.Option("default", "--config", help="model config: default | seed"),
    epochs: int = typer.Option(None, "--epochs", min=1, help="at most this many epochs"),
    seed: int = typer.Option(0, "--seed", help="random seed (splits, init, sampling)"),
    out_path: Path = typer.Option(None, "--out", help="checkpoint path (.safetensors)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Train the recommender on every list in the database and write a checkpoint."""
    from training.train import train_from_store

    cfg = settings()
    device = device or cfg.device
    if out_path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out_path = cfg.model_dir / f"anirec-{stamp}.safetensors"
    with open_store(cfg) as store:
        bar, update = progress_bar(f"training ({config})")
        with bar:
            summary = train_from_store(
                store,
                config=config,
                epochs=epochs,
                seed=seed,
                device=device,
                out=out_path,
                progress=update,
                log=None if as_json else _log,
            )
    if as_json:
        out.print_json(json.dumps(summary.to_json()))
        return
    m = summary.metrics
    out.print(
        f"trained {summary.config} on {summary.device}: {summary.rows:,} rows, "
        f"{summary.users:,} users, {summary.anime:,} anime, {summary.epochs} epochs in "
        f"{summary.train_seconds:.1f}s ({summary.samples_per_second:,.0f} rows/s)"
    )
    for proto in ("split80", "reveal10"):
        if f"val_{proto}_rmse" in m:
            out.print(
                f"  validation {proto}: RMSE {m[f'val_{proto}_rmse']:.4f}, NDCG@10 "
                f"{m[f'val_{proto}_ndcg_at_10']:.4f}, coverage@10 "
                f"{m[f'val_{proto}_coverage_at_10']:.4f}"
            )
    out.print(f"checkpoint: {summary.checkpoint}", markup=False)
    if summary.plot:
        out.print(f"loss curves: {summary.plot}", markup=False)
    _say_what_serves(cfg.model_dir, Path(summary.checkpoint))


def _say_what_serves(model_dir: Path, trained: Path) -> None:
    """The bot and `anirec recommend` serve what the registry names, not the newest file."""
    from training.registry import Registry

    registry = Registry(model_dir)
    served = registry.serving_path()
    if served is not None and served.resolve() == trained.resolve():
        return
    out.print(
        f"not served: the bot serves {served or 'no model yet'}; write to "
        f"{registry.legacy_path} (--out) before any retrain, or run `anirec retrain`",
        markup=False,
    )


def _log(message: str) -> None:
    console.print(message, markup=False, highlight=False)


@app.command()
def evaluate(
    checkpoint: Path = typer.Option(None, "--checkpoint", help="a .safetensors checkpoint"),
    ratings: Path = typer.Option(None, "--ratings", help="user_id,anime_id,score CSV"),
    reveal: int = typer.Option(10, "--reveal", min=1, help="scored rows revealed per user"),
    seed: int = typer.Option(0, "--seed", help="seed of the reveal draw"),
    max_users: int = typer.Option(None, "--max-users", min=1, help="evaluate at most N users"),
    cold: int = typer.Option(
        None, "--cold", min=1, help="new titles: train on the database minus N withheld anime"
    ),
    choose: str = typer.Option("newest", "--choose", help="--cold titles: newest | random"),
    epochs: int = typer.Option(None, "--epochs", min=1, help="--cold: training epochs"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Score a checkpoint on the CSV's users that it was NOT trained on (fold-in protocol), or
    with --cold N, rank N titles withheld from training beside simple baselines."""
    if cold is not None:
        from bot.cli.cold_eval import evaluate_cold_start

        if checkpoint is not None or ratings is not None:
            raise typer.BadParameter(
                "--cold trains its own model on the database: drop --checkpoint and --ratings"
            )

        evaluate_cold_start(cold, choose, reveal, seed, max_users, epochs, as_json)
        return
    if checkpoint is None or ratings is None:
        raise typer.BadParameter("give --checkpoint and --ratings (or --cold N)")
    from recommender.scoring import ServingModel
    from training.evaluate import evaluate_unseen
    from training.splits import load_ratings_csv

    started = time.perf_counter()
    model = ServingModel.load(checkpoint)
    df = load_ratings_csv(ratings)
    trained = {str(u) for u in model.meta.get("train_users") or ()}
    in_checkpoint = df["user"].astype(str).isin(trained)
    metrics = evaluate_unseen(model, df[~in_checkpoint], reveal, seed, max_users)
    metrics["users_skipped_in_checkpoint"] = int(df.loc[in_checkpoint, "user"].nunique())
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        out.print_json(json.dumps(metrics))
        return
    out.print(
        f"{metrics['users']} unseen users, {reveal} ratings revealed each "
        f"({metrics['dropped_rows']} rows of unknown anime dropped)"
    )
    for key in ("rmse", "mae", "r2", "ndcg_at_10", "recall_at_10", "coverage_at_10"):
        out.print(f"{key:>15}: {metrics[key]:.4f}")
