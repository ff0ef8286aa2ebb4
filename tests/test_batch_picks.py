"""`anirec recommend --ratings FILE.csv`: batch picks for people the model never saw, through the
real command line (``bot.cli.main``) on the small trained world, compared with what the chat's
recommender gives a stored user with the same list."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from bot.cli import main
from recommender import Recommender
from recommender.types import Filters
from storage.rows import Rating
from tests.fixtures_model import SmallWorld, build_small_world
from tests.retrain_helpers import untrained_checkpoint
from training.registry import CHECKPOINT, Registry

HEADER = "user_id,anime_id,score\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SmallWorld:
    w = build_small_world(tmp_path_factory.mktemp("batch-world"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def rec(world) -> Recommender:
    return Recommender(world.store, world.checkpoint)


@pytest.fixture
def cli(world, tmp_path, monkeypatch, capsys):
    """Run ``anirec ARGS`` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setenv("ANIREC_DATABASE", str(world.db_path))
    monkeypatch.setenv("ANIREC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("ANIREC_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["anirec", *args])
        with pytest.raises(SystemExit) as done:
            main()
        got = capsys.readouterr()
        return int(done.value.code or 0), got.out, got.err

    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_json_lines_equal_the_chat_picks(world, rec, cli, tmp_path):
    mecha, romance = world.anime_by_genre["Mecha"], world.anime_by_genre["Romance"]
    lists: dict[str, dict[int, int | None]] = {
        "mecha-fan": {mecha[0]: 10, mecha[1]: 9, mecha[2]: 9, romance[0]: 3},
        "romantic": {romance[0]: 9, romance[1]: 10, romance[2]: None, romance[3]: 8},
    }
    cells = {None: ""}
    text = HEADER
    for user, ratings in lists.items():
        for anime_id, score in sorted(ratings.items()):
            text += f"{user},{anime_id},{cells.get(score, score)}\n"
    text += "stranger,99991,8\nstranger,99992,0\n"  # only anime the model never saw
    csv = write(tmp_path / "users.csv", text)

    code, out, err = cli(
        "recommend",
        "--ratings",
        str(csv),
        "--k",
        "7",
        "--json",
        "--checkpoint",
        str(world.checkpoint),
    )
    assert code == 0, err
    got = lines(out)
    assert [g["user_id"] for g in got] == ["mecha-fan", "romantic", "stranger"]
    for g in got[:2]:
        user = g["user_id"]
        chat = rec.recommend(world.new_user(f"chat-{user}", dict(sorted(lists[user].items()))), 7)
        assert g["picks"] == [p.anime.anime_id for p in chat]
        assert g["predicted"] == {str(p.anime.anime_id): p.predicted_score for p in chat}
        assert not set(g["picks"]) & set(lists[user]), "their own list is never picked"
        assert not set(g["picks"]) & set(world.nsfw_ids)
        assert all(1.0 <= s <= 10.0 and s == round(s, 2) for s in g["predicted"].values())
    assert got[0]["picks"][0] in mecha  # the planted taste leads
    cold = rec.recommend_page(None, 7).picks  # someone the model knows nothing about
    assert got[2]["picks"] == [p.anime.anime_id for p in cold]
    assert "3 users, 10 rows" in err


def test_nsfw_off_unless_asked_and_filters_apply(world, cli, tmp_path):
    romance = world.anime_by_genre["Romance"]
    csv = write(tmp_path / "r.csv", HEADER + "".join(f"r,{a},9\n" for a in romance[:5]))
    ck = ("--checkpoint", str(world.checkpoint), "--json")
    code, out, err = cli("recommend", "--ratings", str(csv), "-k", "80", *ck)
    assert code == 0, err
    assert not set(lines(out)[0]["picks"]) & set(world.nsfw_ids)
    code, out, err = cli("recommend", "--ratings", str(csv), "-k", "10", "--nsfw", *ck)
    assert code == 0 and set(lines(out)[0]["picks"]) & set(world.nsfw_ids), "planted"
    code, out, err = cli("recommend", "--ratings", str(csv), "--genre", "Sports", *ck)
    sports = set(world.anime_by_genre["Sports"])
    assert code == 0 and len(lines(out)[0]["picks"]) == 10
    assert all(
        a in sports or "Sports" in world.store.catalog.get(a).genres for a in lines(out)[0]["picks"]
    )


def test_candidates_are_the_only_ones_ranked(world, rec, cli, tmp_path):
    mecha, horror = world.anime_by_genre["Mecha"], world.anime_by_genre["Horror"]
    listed = {mecha[0]: 10, mecha[1]: 9}
    csv = write(tmp_path / "u.csv", HEADER + "".join(f"u,{a},{s}\n" for a, s in listed.items()))
    wanted = [mecha[1], mecha[5], horror[0], horror[3], mecha[9], world.nsfw_ids[0], horror[7]]
    cands = write(tmp_path / "c.txt", "\n".join(str(a) for a in wanted) + "\n\n")
    ck = ("--checkpoint", str(world.checkpoint), "--json")
    code, out, err = cli(
        "recommend", "--ratings", str(csv), "--candidates", str(cands), "-k", "4", *ck
    )
    assert code == 0, err
    ratings = [Rating(a, s, None, "file", "") for a, s in listed.items()]
    everything = [p.anime.anime_id for p in rec.recommend_for(ratings, k=len(world.anime))]
    expected = [a for a in everything if a in wanted][:4]
    assert lines(out)[0]["picks"] == expected
    assert mecha[1] not in expected and world.nsfw_ids[0] not in expected
    assert expected[0] == mecha[5]  # the planted taste, within the candidates
    # an id outside the catalog is named with its line
    bad = write(tmp_path / "bad.txt", f"{mecha[5]}\n\n424242\n")
    code, out, err = cli("recommend", "--ratings", str(csv), "--candidates", str(bad), *ck)
    assert code == 1 and out == ""
    assert "line 3 of" in err and "424242 is not in the catalog" in err
    word = write(tmp_path / "word.txt", "12\nabc\n")
    code, _, err = cli("recommend", "--ratings", str(csv), "--candidates", str(word), *ck)
    assert code == 1 and "line 2 of" in err and "whole number" in err


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (HEADER + "a,1,8\na,2,11\n", 3, "out of range"),
        (HEADER + "a,1,8\nb,2,7\na,3,9\n", 4, "grouped by user"),
        (HEADER + "a,1,8\na,1,7\n", 3, "twice"),
        (HEADER + "a,1,8\nb,x,7\n", 3, "whole number"),
        (HEADER + "a,1\n", 2, "expected 3 fields"),
        ("user,anime,score\na,1,8\n", 1, "bad header"),
        ("", 1, "empty"),
    ],
)
def test_bad_lines_are_named_and_nothing_is_printed(world, cli, tmp_path, text, line, problem):
    csv = write(tmp_path / "bad.csv", text)
    code, out, err = cli(
        "recommend", "--ratings", str(csv), "--json", "--checkpoint", str(world.checkpoint)
    )
    assert code == 1 and out == ""
    assert f"bad row: line {line} of {csv}" in err and problem in err


def test_header_only_file_prints_nothing(world, cli, tmp_path):
    csv = write(tmp_path / "empty.csv", HEADER)
    code, out, err = cli(
        "recommend", "--ratings", str(csv), "--json", "--checkpoint", str(world.checkpoint)
    )
    assert code == 0 and out == "" and "0 users" in err


def test_exact_repeats_merge_and_the_database_is_untouched(world, rec, cli, tmp_path):
    mecha = world.anime_by_genre["Mecha"]
    users_before = world.store.db.query("SELECT COUNT(*) FROM users")[0][0]
    ratings_before = world.store.db.query("SELECT COUNT(*) FROM ratings")[0][0]
    csv = write(tmp_path / "rep.csv", HEADER + f"x,{mecha[0]},9\nx,{mecha[0]},9\nx,{mecha[3]},\n")
    code, out, err = cli(
        "recommend", "--ratings", str(csv), "--json", "--checkpoint", str(world.checkpoint)
    )
    assert code == 0, err
    same = rec.recommend_for(
        [Rating(mecha[0], 9, None, "f", ""), Rating(mecha[3], None, None, "f", "")], 10
    )
    assert lines(out)[0]["picks"] == [p.anime.anime_id for p in same]
    assert world.store.db.query("SELECT COUNT(*) FROM users")[0][0] == users_before
    assert world.store.db.query("SELECT COUNT(*) FROM ratings")[0][0] == ratings_before


def test_readable_table_without_json(world, cli, tmp_path):
    mecha = world.anime_by_genre["Mecha"]
    csv = write(tmp_path / "t.csv", HEADER + f"fan\x1b[31m,{mecha[0]},10\n")
    code, out, err = cli(
        "recommend", "--ratings", str(csv), "-k", "3", "--checkpoint", str(world.checkpoint)
    )
    assert code == 0, err
    assert out.splitlines()[0] == "user fan (1 on their list):" and "\x1b" not in out
    assert len(out.splitlines()) == 4 and "Mecha Story" in out and "predicted" in out


def test_the_registry_model_is_used_by_default(world, cli, tmp_path):
    mecha = world.anime_by_genre["Mecha"]
    csv = write(tmp_path / "d.csv", HEADER + f"d,{mecha[0]},10\nd,{mecha[1]},9\n")
    code, _, err = cli("recommend", "--ratings", str(csv), "--json")
    assert code != 0 and "no trained model" in err
    reg = Registry(tmp_path / "models")
    work = reg.new_workdir(1)
    shutil.copy(world.checkpoint, work / CHECKPOINT)
    reg.promote(reg.commit(work))
    newer = reg.new_workdir(2)  # a newer version, trained but never promoted
    untrained_checkpoint(newer / CHECKPOINT, [a.anime_id for a in world.anime], seed=3)
    newest = reg.checkpoint(reg.commit(newer))
    ck = ("--checkpoint", str(world.checkpoint))
    _, promoted, _ = cli("recommend", "--ratings", str(csv), "--json", *ck)
    code, served, err = cli("recommend", "--ratings", str(csv), "--json")
    assert code == 0, err
    assert served == promoted
    _, other, _ = cli("recommend", "--ratings", str(csv), "--json", "--checkpoint", str(newest))
    assert lines(other)[0]["picks"] != lines(served)[0]["picks"]  # it would differ


def test_usage_errors(world, cli, tmp_path):
    csv = write(tmp_path / "u.csv", HEADER)
    code, _, err = cli("recommend", "--ratings", str(csv), "--user", "console:a")
    assert code != 0 and "either --user or --ratings" in err
    code, _, err = cli("recommend", "--user", "console:a", "--candidates", str(csv))
    assert code != 0 and "--candidates goes with --ratings" in err
    code, _, err = cli(
        "recommend", "--ratings", str(tmp_path / "nope.csv"), "--checkpoint", str(world.checkpoint)
    )
    assert code == 1 and "no such file" in err


def test_recommend_for_matches_recommend(world, rec):
    horror = world.anime_by_genre["Horror"]
    user = world.new_user("api-fan", {horror[0]: 9, horror[2]: 8})
    filters = Filters(types=frozenset({"TV"}))
    stored = world.store.ratings.of_user(user)
    assert rec.recommend_for(stored, 5, filters) == rec.recommend(user, 5, filters)
    assert rec.recommend_for(stored, 5, candidates=set()) == []
