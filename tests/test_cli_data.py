"""The data commands, run as real subprocesses: exit codes, JSON and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_import import CATALOG


def anirec(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "ANIREC_DATABASE": str(tmp_path / "cli.db"),
        "ANIREC_MODEL_DIR": str(tmp_path / "models"),
        **env,
    }
    environment.pop("ANIREC_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def test_init_import_and_stats_json(tmp_path: Path):
    (tmp_path / "anime.csv").write_text(CATALOG)
    (tmp_path / "r.csv").write_text("user_id,anime_id,score\n1,1,8\n1,5,0\n2,30,9\n")
    assert anirec(tmp_path, "init").returncode == 0
    assert anirec(tmp_path, "import", "catalog", "anime.csv").returncode == 0
    result = anirec(tmp_path, "import", "ratings", "r.csv", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == 3
    stats = json.loads(anirec(tmp_path, "stats", "--json").stdout)
    assert {k: stats[k] for k in ("anime", "users", "ratings", "scored")} == {
        "anime": 4,
        "users": 2,
        "ratings": 3,
        "scored": 2,
    }


def test_mal_xml_import_for_a_chat_user(tmp_path: Path):
    from tests.test_import import MAL_XML

    (tmp_path / "anime.csv").write_text(CATALOG)
    (tmp_path / "list.xml").write_text(MAL_XML)
    anirec(tmp_path, "import", "catalog", "anime.csv")
    result = anirec(tmp_path, "import", "mal-xml", "list.xml", "--user", "telegram:55", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["unknown_anime"] == 1
    bad = anirec(tmp_path, "import", "mal-xml", "list.xml", "--user", "dataset:1")
    assert bad.returncode != 0 and "reserved" in bad.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (("import", "ratings", "missing.csv"), "no such file"),
        (("import", "catalog", "bad.csv"), "bad header"),
        (("import", "ratings", "bad.csv"), "bad.csv"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path: Path, args, expected):
    (tmp_path / "bad.csv").write_text("nonsense\n1\n")
    result = anirec(tmp_path, *args)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_every_command_has_help(tmp_path: Path):
    for args in (
        ("--help",),
        ("init", "--help"),
        ("import", "--help"),
        ("stats", "--help"),
        ("import", "catalog", "--help"),
        ("import", "ratings", "--help"),
        ("import", "mal-xml", "--help"),
        ("demo", "--help"),
    ):
        result = anirec(tmp_path, *args)
        assert result.returncode == 0 and "Usage" in result.stdout, args


def test_demo_without_data_says_where_to_get_it(tmp_path: Path):
    result = anirec(tmp_path, "demo", ANIREC_DATA_DIR=str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "Anime Recommendations Database" in result.stderr
    assert str(tmp_path / "nowhere" / "anime" / "catalog.csv") in result.stderr
