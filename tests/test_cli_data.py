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


def test_demo_without_a_data_folder_uses_the_shipped_data(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = anirec(
        tmp_path, "demo", "--no-train", "--no-chat", ANIREC_DATA_DIR=str(tmp_path / "empty")
    )
    assert result.returncode == 0, result.stderr
    assert "shipped with Anirec" in result.stderr
    assert "12,294 anime, 4,500 users, 453,101 ratings (358,223 scored)" in result.stdout


def test_a_data_folder_wins_over_the_shipped_data(tmp_path: Path):
    folder = tmp_path / "data" / "anime"
    folder.mkdir(parents=True)
    (folder / "catalog.csv").write_text(CATALOG)
    (folder / "animelist.csv").write_text("user_id,anime_id,score\n1,1,8\n")
    result = anirec(tmp_path, "demo", "--no-train", "--no-chat", ANIREC_DATA_DIR="data")
    assert result.returncode == 0, result.stderr
    assert "4 anime, 1 users, 1 ratings" in result.stdout


def test_demo_without_any_data_says_where_to_get_it(tmp_path: Path, monkeypatch, capsys):
    """An installation stripped of the shipped copy, and no folder: the help, and False."""
    import storage.demo_data
    from bot.cli.data import ensure_demo_data
    from bot.settings import Settings
    from storage.repository import Store

    monkeypatch.setattr(storage.demo_data, "shipped_data", lambda: None)
    cfg = Settings(_env_file=None, data_dir=tmp_path / "nowhere", database=tmp_path / "x.db")
    with Store(cfg.database) as store:
        assert ensure_demo_data(cfg, store) is False
    err = capsys.readouterr().err
    assert "Anime Recommendations Database" in err
    assert str(tmp_path / "nowhere" / "anime" / "catalog.csv") in err


def test_paths_and_user_text_print_literally(tmp_path: Path):
    folder = tmp_path / "a[/b]\x1b[31mred[bold]"  # a folder "a[" holding "b]\x1b[31mred[bold]"
    folder.mkdir(parents=True)
    (folder / "anime.csv").write_text(CATALOG)
    result = anirec(tmp_path, "import", "catalog", str(folder / "anime.csv"))
    assert result.returncode == 0, result.stderr
    assert "a[/b]red[bold]/anime.csv: 4 rows read" in result.stdout
    assert "\x1b" not in result.stdout + result.stderr
    bad = anirec(tmp_path, "import", "ratings", str(folder / "missing[/i].csv"))
    assert bad.returncode == 1 and "missing[/i].csv: no such file" in bad.stderr
    assert "\x1b" not in bad.stderr


def test_a_refused_list_export_names_the_entry_and_creates_no_user(tmp_path: Path):
    (tmp_path / "anime.csv").write_text(CATALOG)
    (tmp_path / "list.xml").write_text(
        "<myanimelist><anime><series_animedb_id>1</series_animedb_id>"
        "<series_title>Cowboy Bebop</series_title><my_score>inf</my_score></anime></myanimelist>"
    )
    anirec(tmp_path, "import", "catalog", "anime.csv")
    result = anirec(tmp_path, "import", "mal-xml", "list.xml", "--user", "telegram:55")
    assert result.returncode == 1
    assert "list.xml, entry 1 (anime id 1, 'Cowboy Bebop'): my_score" in result.stderr
    assert "Traceback" not in result.stderr
    stats = json.loads(anirec(tmp_path, "stats", "--json").stdout)
    assert stats["users"] == 0 and stats["ratings"] == 0
