"""`anirec chat` as a real subprocess with piped stdin (no terminal), on a real database and a
small really trained model (tests/fixtures_model.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage.repository import Store
from tests.fixtures_model import build_small_world

MAL_XML = """<?xml version="1.0" encoding="UTF-8"?>
<myanimelist>
  <anime><series_animedb_id>{a}</series_animedb_id><my_score>8</my_score>
    <my_status>Completed</my_status></anime>
  <anime><series_animedb_id>{b}</series_animedb_id><my_score>0</my_score>
    <my_status>Dropped</my_status></anime>
</myanimelist>
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    w = build_small_world(root)
    models = root / "models"
    models.mkdir()
    shutil.copy(w.checkpoint, models / "serving.safetensors")
    w.store.close()  # the subprocess opens its own connection
    yield w, root


def chat(
    root: Path, db: Path, user: str, lines: list[str], models: Path | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIREC_")}
    env.update(
        ANIREC_DATABASE=str(db),
        ANIREC_MODEL_DIR=str(models or root / "models"),
        ANIREC_ADMINS="console:root",
    )
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--user", user],
        check=False,
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=root,
    )


def test_console_session(world):
    w, root = world
    mecha = w.anime_by_genre["Mecha"]
    titles = {a.anime_id: a.title for a in w.anime}
    result = chat(
        root,
        w.db_path,
        "alice",
        [
            "/help",
            f"/rate {titles[mecha[0]]} 9",
            f"/rate {titles[mecha[1]]} 10",
            f"/rate {titles[mecha[2]]} 12",
            "/rate mecha story",
            "/recommend 3",
            "1",  # pick #1: "Seen it / rate" -> the 1-10 buttons
            "7",  # ...score 7
            "/profile",
            "/frobnicate",
            "hello",
            "/quit",
            "/rate never reached 5",
        ],
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Commands:" in out and "/rate TITLE SCORE" in out
    assert f"Rated {titles[mecha[0]]}: 9/10" in out
    assert "Scores go from 1 to 10" in out
    assert "Did you mean" in out or "How would you rate" in out
    picks = re.search(r"== Picks for alice ==\n1\. (.+?) \(", out)
    assert picks, out
    first_pick = picks.group(1)
    assert f"Rated {first_pick}: 7/10" in out
    assert "[1] Seen it / rate: #1 " in out and "More" in out
    assert "alice's profile" in out and "Scored: 3" in out
    assert "I don't know /frobnicate" in out and "Commands start with a slash" in out
    assert "never reached" not in out
    with Store(w.db_path) as store:
        user = store.users.find("console", "alice")
        scores = {r.anime_id: r.score for r in store.ratings.of_user(user.id)}
    first_id = next(a for a, t in titles.items() if t == first_pick)
    assert scores == {mecha[0]: 9, mecha[1]: 10, first_id: 7}
    assert first_id not in mecha[:2]


def test_console_night_import_and_admin(world, tmp_path: Path):
    w, root = world
    romance, comedy = w.anime_by_genre["Romance"], w.anime_by_genre["Comedy"]
    with Store(w.db_path) as store:
        bob = store.users.ensure("console", "bob", "bob")
        store.ratings.upsert(bob.id, comedy[0], 9)
        store.ratings.upsert(bob.id, comedy[1], 8)
    export = tmp_path / "animelist.xml"
    export.write_text(MAL_XML.format(a=romance[0], b=romance[1]))
    result = chat(
        root,
        w.db_path,
        "carol",
        [
            f"/import {export}",
            f"/import {tmp_path / 'missing.xml'}",
            "/night bob",
            "2",  # vote for the second pick
            "/night nobody",
            "/settings nsfw on",
            "/retrain",
            "/model",
        ],
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Imported animelist.xml: 2 entries, 1 with a score" in out
    assert "I couldn't read" in out and "missing.xml" in out
    assert "Anime night for carol, bob:" in out
    assert "What do we watch tonight?" in out and "You voted for" in out
    assert "I don't know nobody here yet" in out
    assert "NSFW titles for you: on" in out
    assert "Only admins" in out  # carol is not an admin
    picks = re.findall(
        r"^\d\. (.+?) \(", out.split("Anime night for carol, bob:")[1], flags=re.MULTILINE
    )
    assert picks
    with Store(w.db_path) as store:
        seen = {
            r.anime_id
            for u in ("bob", "carol")
            for r in store.ratings.of_user(store.users.find("console", u).id)
        }
        title_to_id = {a.title: a.anime_id for a in store.catalog.all()}
    assert not seen & {title_to_id[t] for t in picks}


def test_console_admin_and_no_model(world, tmp_path: Path):
    w, root = world
    result = chat(
        root, w.db_path, "root", ["/recommend", "/model"], models=tmp_path / "empty-models"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "no model trained yet" in out.lower()
    assert "No model is trained yet" in out
    assert "Serving: no model trained yet" in out and "Next run: " in out


@pytest.mark.slow
def test_demo_trains_a_model_then_opens_the_console(world, tmp_path: Path):
    """`anirec demo` on a database with data but no model: trains one, then chats."""
    w, _root = world
    db = tmp_path / "demo.db"
    shutil.copy(w.db_path, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIREC_")}
    env.update(
        ANIREC_DATABASE=str(db),
        ANIREC_MODEL_DIR=str(tmp_path / "models"),
        ANIREC_DEVICE="cpu",
        ANIREC_DATA_DIR=str(tmp_path / "no-data-needed"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--user", "demo"],
        check=False,
        input="/rate Horror Story A 10\n/recommend 3\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no model yet: training one" in result.stderr
    assert (tmp_path / "models" / "serving.safetensors").is_file()
    assert "Anirec chat as demo" in result.stdout
    assert "== Picks for demo ==" in result.stdout and "1. " in result.stdout
