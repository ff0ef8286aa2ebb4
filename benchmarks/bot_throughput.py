"""Concurrent /rate through the Telegram adapter into SQLite: ratings per second, none lost.

    python -m benchmarks.bot_throughput [--users 200] [--per-user 10] [--out FILE]

Every rating travels the real path: a Telegram Update (fake Bot API on 127.0.0.1) -> the real
python-telegram-bot Application (concurrent updates) -> the command core (title search, rate
limit, user lookup) -> one SQLite transaction -> a sendMessage reply. The same ratings are also
sent straight into the core (no Telegram) to show what the adapter costs. Afterwards every row
is read back and compared. Prints a table and writes JSON (default
benchmarks/out/bot_throughput.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bot.app import AppContext, TelegramService, quiet_secret_loggers
from bot.core import Caller, Core
from bot.settings import Settings
from recommender import Recommender
from storage.repository import Store
from storage.rows import Anime
from tests.fakes.telegram_api import TOKEN, FakeTelegram

GENRES = ("Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Mystery", "Sports", "Horror")
WORDS = (
    "Crimson",
    "Silent",
    "Falling",
    "Iron",
    "Paper",
    "Lunar",
    "Hidden",
    "Electric",
    "Winter",
    "Golden",
    "Broken",
    "Endless",
    "Distant",
    "Velvet",
    "Hollow",
    "Bright",
)
NOUNS = (
    "Garden",
    "Blade",
    "Horizon",
    "Academy",
    "Signal",
    "Voyage",
    "Kingdom",
    "Engine",
    "Melody",
    "Archive",
    "Frontier",
    "Circuit",
    "Harbor",
    "Legend",
    "Promise",
    "Orbit",
)


def catalog(n: int) -> list[Anime]:
    """Distinct, realistic-looking titles (two words and a season number)."""
    out = []
    for i in range(n):
        name = f"{WORDS[i % 16]} {NOUNS[(i // 16) % 16]} {i // 256 + 1}"
        out.append(
            Anime(
                i + 1,
                name,
                (GENRES[i % 8], GENRES[(i * 3 + 1) % 8]),
                "TV",
                12,
                7.0 + (i % 20) / 10,
                1000 + i,
                False,
            )
        )
    return out


def plan(users: int, per_user: int, anime: list[Anime]) -> dict[int, dict[int, int]]:
    """user number -> {anime id: score}: distinct anime per user, so every row is checkable."""
    wanted = {}
    for u in range(users):
        picks = {}
        for r in range(per_user):
            a = anime[(u * 37 + r * 101) % len(anime)]
            picks[a.anime_id] = (u + r) % 10 + 1
        wanted[u] = picks
    return wanted


def check(store: Store, platform_name: str, wanted: dict[int, dict[int, int]]) -> int:
    """How many planned ratings are missing or wrong in the database."""
    lost = 0
    for u, picks in wanted.items():
        user = store.users.find(platform_name, str(900_000 + u))
        got = {} if user is None else {r.anime_id: r.score for r in store.ratings.of_user(user.id)}
        lost += sum(got.get(a) != s for a, s in picks.items())
    return lost


async def through_telegram(store: Store, anime: list[Anime], wanted, timeout: float) -> dict:
    settings = Settings(_env_file=None, telegram_token=TOKEN, database=store.path)
    recommender = Recommender(store, None)
    recommender.titles()  # build the title index before the clock starts
    core = Core(store, recommender, settings)  # the default per-user rate limit stays on
    titles = {a.anime_id: a.title for a in anime}
    total = sum(len(p) for p in wanted.values())
    async with FakeTelegram() as tg:
        service = TelegramService(
            AppContext(settings, store, recommender, core), tg.base_url, tg.base_file_url
        )
        await service.start()
        await tg.wait_for_call("setMyCommands")
        people = {u: tg.user(f"bench{u}", user_id=900_000 + u) for u in wanted}
        start = time.perf_counter()
        for r in range(max(len(p) for p in wanted.values())):
            for u, picks in wanted.items():
                items = list(picks.items())
                if r < len(items):
                    aid, score = items[r]
                    tg.push_command(f"/rate {titles[aid]} {score}", people[u])
        replies = await tg.wait_for_calls("sendMessage", total, timeout=timeout)
        elapsed = time.perf_counter() - start
        await service.stop()
    texts = [c.params.get("text", "") for c in replies]
    return {
        "ratings": total,
        "seconds": elapsed,
        "ratings_per_s": total / elapsed,
        "replies": len(replies),
        "rated_replies": sum(t.startswith("Rated ") for t in texts),
        "cooldowns": sum("Too many requests" in t for t in texts),
        "lost": check(store, "telegram", wanted),
    }


async def through_core(store: Store, anime: list[Anime], wanted, concurrency: int) -> dict:
    recommender = Recommender(store, None)
    recommender.titles()
    core = Core(store, recommender)
    titles = {a.anime_id: a.title for a in anime}
    gate = asyncio.Semaphore(concurrency)

    async def one(u: int, aid: int, score: int) -> str:
        async with gate:
            caller = Caller("console", str(900_000 + u), f"bench{u}")
            reply = await core.handle_text(caller, f"/rate {titles[aid]} {score}")
            return reply.kind

    jobs = [one(u, a, s) for u, picks in wanted.items() for a, s in picks.items()]
    start = time.perf_counter()
    kinds = await asyncio.gather(*jobs)
    elapsed = time.perf_counter() - start
    return {
        "ratings": len(jobs),
        "seconds": elapsed,
        "ratings_per_s": len(jobs) / elapsed,
        "replies": len(kinds),
        "rated_replies": kinds.count("ok"),
        "cooldowns": kinds.count("cooldown"),
        "lost": check(store, "console", wanted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--per-user",
        type=int,
        default=10,
        help="ratings per user, sent at once (the default burst limit is 12)",
    )
    parser.add_argument("--anime", type=int, default=4000, help="catalog size")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/bot_throughput.json"))
    args = parser.parse_args()
    quiet_secret_loggers()
    anime = catalog(args.anime)
    wanted = plan(args.users, args.per_user, anime)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.db") as store:
        store.catalog.upsert(anime)
        telegram = asyncio.run(through_telegram(store, anime, wanted, args.timeout))
        core = asyncio.run(through_core(store, anime, wanted, 256))
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "users": args.users,
        "per_user": args.per_user,
        "catalog": args.anime,
        "telegram": telegram,
        "core_only": core,
    }
    table = Table(title=f"/rate throughput: {args.users} users x {args.per_user} ratings at once")
    for col in ("path", "ratings", "seconds", "ratings/s", "replies", "cooldowns", "lost"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for name, row in (
        ("Telegram adapter (PTB + fake Bot API)", telegram),
        ("core only (no platform)", core),
    ):
        table.add_row(
            name,
            str(row["ratings"]),
            f"{row['seconds']:.2f}",
            f"{row['ratings_per_s']:.0f}",
            str(row["replies"]),
            str(row["cooldowns"]),
            str(row["lost"]),
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if telegram["lost"] or core["lost"]:
        raise SystemExit("ratings were lost")


if __name__ == "__main__":
    main()
