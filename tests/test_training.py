"""The training pipeline from the database, `anirec train` / `anirec evaluate`, other scales."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.model import get_config
from recommender.scoring import ServingModel
from storage.importers import import_catalog, import_ratings
from storage.repository import Store
from tests import model_synth
from training import data as tdata
from training.evaluate import evaluate_unseen, like_min
from training.train import fit, train_from_store

SMALL = ["--config", "default", "--epochs", "4"]


def write_catalog(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["anime_id", "name", "genre", "type", "episodes", "rating", "members"])
        for aid, genres in model_synth.catalog().items():
            w.writerow([aid, f"Show {aid}", ", ".join(genres), "TV", 12, 7.5, 1000 + aid])
    return path


def write_ratings(path: Path, df: pd.DataFrame) -> Path:
    df.rename(columns={"user": "user_id"})[["user_id", "anime_id", "score"]].astype(
        {"score": int}
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    df, fav = model_synth.ratings(260, seed=11)
    seen = df[df["user"] < 200]
    unseen = df[df["user"] >= 200]
    cat = write_catalog(root / "catalog.csv")
    train_csv = write_ratings(root / "train.csv", seen)
    eval_csv = write_ratings(root / "eval.csv", df)  # seen users too: evaluate must skip them
    db = root / "anirec.db"
    with Store(db) as store:
        import_catalog(store, cat)
        import_ratings(store, train_csv)
    return {
        "root": root,
        "db": db,
        "catalog": cat,
        "train_csv": train_csv,
        "eval_csv": eval_csv,
        "unseen": unseen,
        "fav": fav,
    }


def test_data_pipeline_from_store(world):
    with Store(world["db"]) as store:
        data = tdata.from_store(store)
        again = tdata.from_store(store)
    assert data.n_users == 200 and data.n_items == 100
    assert data.fingerprint == again.fingerprint
    assert (data.scores == 0).any() and (data.scores >= 8).any()  # implicit rows kept
    assert data.item_genres.shape == (100, len(data.genre_vocab))
    assert data.item_genres.sum(1).min() >= 1
    mecha = data.genre_vocab.index("Mecha")
    assert data.item_genres[list(data.anime_ids).index(100), mecha]
    assert np.all(np.diff(data.users) >= 0)
    rows = data.user_rows(0)
    assert rows.stop - rows.start == int(np.diff(data.indptr)[0])


def test_train_from_store_writes_checkpoint_and_plot(world):
    out = world["root"] / "models" / "m.safetensors"
    seen_epochs = []
    with Store(world["db"]) as store:
        summary = train_from_store(
            store,
            config="default",
            epochs=4,
            seed=0,
            device="cpu",
            out=out,
            progress=lambda d, t: seen_epochs.append((d, t)),
        )
    assert summary.checkpoint == out and out.is_file()
    assert summary.plot is not None and summary.plot.is_file()
    assert summary.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen_epochs[-1][0] == summary.epochs
    for key in ("val_split80_rmse", "val_split80_ndcg_at_10", "val_reveal10_rmse"):
        assert key in summary.metrics, summary.metrics
    model = ServingModel.load(out)
    assert model.meta["fingerprint"] == summary.fingerprint
    assert set(model.meta["train_users"]) <= {str(u) for u in range(200)}
    assert model.metrics == summary.metrics


def test_evaluate_unseen_users(world):
    df, _ = model_synth.ratings(260, seed=11)
    res = fit(
        df[df["user"] < 200],
        model_synth.catalog(),
        get_config(
            "default",
            epochs=8,
            batch_size=64,
            dim=16,
            genre_hidden=16,
            ease_min_count=2,
            knn_topk=32,
        ),
        seed=0,
    )
    m = evaluate_unseen(res.serving, world["unseen"], reveal=5, seed=0)
    assert m["users"] > 40
    assert m["ndcg_at_10"] > 0.5 and m["rmse"] < 2.5
    assert 0 < m["coverage_at_10"] <= 1 and m["dropped_rows"] == 0
    again = evaluate_unseen(res.serving, world["unseen"], reveal=5, seed=0)
    assert again == m


def test_other_score_scale(world):
    df, _ = model_synth.ratings(200, seed=3, scale=(0.5, 5.0))
    res = fit(
        df,
        model_synth.catalog(),
        get_config("default", epochs=4, batch_size=64, dim=16, genre_hidden=16, ease_min_count=2),
        score_range=(0.5, 5.0),
    )
    s = res.serving
    assert s.score_range == (0.5, 5.0) and like_min(s.score_range) == 4.0
    state = s.fold_in(model_synth.ids_of("Mecha")[:3], [5.0, 4.5, 5.0])
    pred = s.predict(state)
    assert pred.min() >= 0.5 and pred.max() <= 5.0
    with pytest.raises(ValueError, match="outside the score range"):
        fit(
            df.assign(score=df["score"] * 3),
            model_synth.catalog(),
            "default",
            epochs=1,
            score_range=(0.5, 5.0),
        )


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_cli_train_and_evaluate(world, tmp_path):
    env = {
        **os.environ,
        "ANIREC_DATABASE": str(world["db"]),
        "ANIREC_MODEL_DIR": str(tmp_path / "models"),
        "ANIREC_DEVICE": "cpu",
    }
    repo = Path(__file__).resolve().parents[1]
    ckpt = tmp_path / "cli.safetensors"
    done = _cli(["train", *SMALL, "--seed", "1", "--out", str(ckpt), "--json"], env, repo)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["checkpoint"] == str(ckpt) and ckpt.is_file()
    # the quality gate's fixed holdout of data-set users is never trained on
    assert summary["device"] == "cpu" and 0 < summary["holdout_users"] <= 20
    assert summary["users"] + summary["holdout_users"] == 200
    assert "val_reveal10_ndcg_at_10" in summary["metrics"]
    done = _cli(
        [
            "evaluate",
            "--checkpoint",
            str(ckpt),
            "--ratings",
            str(world["eval_csv"]),
            "--reveal",
            "5",
            "--seed",
            "2",
            "--json",
        ],
        env,
        repo,
    )
    assert done.returncode == 0, done.stderr
    m = json.loads(done.stdout)
    for key in (
        "rmse",
        "mae",
        "r2",
        "ndcg_at_10",
        "recall_at_10",
        "coverage_at_10",
        "users",
        "dropped_rows",
    ):
        assert key in m
    assert m["users_skipped_in_checkpoint"] >= 150
    assert 0 < m["users"] <= 60 + summary["holdout_users"]  # the gate's holdout is unseen too
    # friendly one-line errors
    bad = _cli(
        [
            "evaluate",
            "--checkpoint",
            str(world["catalog"]),
            "--ratings",
            str(world["eval_csv"]),
            "--reveal",
            "5",
        ],
        env,
        repo,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr
    bad = _cli(["train", "--device", "xla", "--out", str(tmp_path / "x.safetensors")], env, repo)
    assert bad.returncode == 1 and "torch_xla is not installed" in bad.stderr


def test_train_on_empty_database_is_a_clear_error(tmp_path):
    with Store(tmp_path / "empty.db") as store, pytest.raises(tdata.NoTrainingDataError):
        train_from_store(store, out=tmp_path / "m.safetensors", device="cpu")


@pytest.mark.slow
def test_real_data_short_training(data_dir, tmp_path):
    """A short run on a part of the shared data: it trains, tunes and scores held-out users."""
    from training.splits import holdout_users, load_ratings_csv

    df = load_ratings_csv(data_dir / "anime" / "animelist.csv")
    users = np.sort(df["user"].unique())[:900]
    df = df[df["user"].isin(users)]
    train, held = holdout_users(df, n=150, seed=0)
    cat = pd.read_csv(data_dir / "anime" / "catalog.csv")
    genres = {
        int(a): tuple(g.strip() for g in str(s).split(",")) if isinstance(s, str) else ()
        for a, s in zip(cat["anime_id"], cat["genre"], strict=True)
    }
    res = fit(train, genres, "default", epochs=3, seed=0)
    m = evaluate_unseen(res.serving, held, reveal=10, seed=0)
    assert m["users"] > 50
    assert m["ndcg_at_10"] > 0.2 and m["rmse"] < 1.6
