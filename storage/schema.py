"""The schema, as an ordered list of forward migrations.

Migration N (1-based) moves a database from ``user_version`` N-1 to N. Never edit a migration
that has shipped: append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    # 1: the first schema
    (
        """
        CREATE TABLE anime (
            anime_id    INTEGER PRIMARY KEY,          -- the MyAnimeList id
            title       TEXT NOT NULL,                -- HTML entities already unescaped
            genres      TEXT NOT NULL DEFAULT '',     -- comma-separated, as in the catalog
            type        TEXT,                         -- TV, Movie, OVA, ONA, Special, Music
            episodes    INTEGER,                      -- NULL when unknown
            mal_score   REAL,                         -- MyAnimeList mean score
            members     INTEGER NOT NULL DEFAULT 0,
            nsfw        INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE users (
            id               INTEGER PRIMARY KEY,
            platform         TEXT NOT NULL,   -- dataset, console, telegram, discord
            platform_user_id TEXT NOT NULL,
            display_name     TEXT,
            settings         TEXT NOT NULL DEFAULT '{}',
            created_at       TEXT NOT NULL,
            UNIQUE (platform, platform_user_id)
        )
        """,
        """
        CREATE TABLE ratings (
            user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            anime_id   INTEGER NOT NULL REFERENCES anime(anime_id),
            score      INTEGER CHECK (score IS NULL OR score BETWEEN 1 AND 10),
            status     TEXT,     -- watching, completed, on_hold, dropped, plan_to_watch,
                                 -- not_interested; NULL when unknown
            source     TEXT NOT NULL CHECK (source IN ('chat', 'import', 'dataset')),
            updated_at TEXT NOT NULL,
            PRIMARY KEY (user_id, anime_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX ratings_anime ON ratings(anime_id)",
        """
        CREATE TABLE chats (
            platform   TEXT NOT NULL,
            chat_id    TEXT NOT NULL,
            title      TEXT,
            settings   TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            PRIMARY KEY (platform, chat_id)
        )
        """,
        """
        CREATE TABLE model_versions (
            id          INTEGER PRIMARY KEY,
            path        TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            promoted_at TEXT,
            status      TEXT NOT NULL DEFAULT 'candidate', -- candidate, serving, retired, rejected
            metrics     TEXT NOT NULL DEFAULT '{}',
            fingerprint TEXT,
            run_id      INTEGER REFERENCES training_runs(id)
        )
        """,
        """
        CREATE TABLE training_runs (
            id          INTEGER PRIMARY KEY,
            trigger     TEXT NOT NULL,       -- schedule, admin, cli
            requested_by TEXT,
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            status      TEXT NOT NULL,       -- running, finished, failed
            progress    TEXT NOT NULL DEFAULT '{}',
            data_size   TEXT NOT NULL DEFAULT '{}',
            candidate_metrics TEXT NOT NULL DEFAULT '{}',
            serving_metrics   TEXT NOT NULL DEFAULT '{}',
            decision    TEXT,                -- promoted, rejected, NULL while running
            error       TEXT,
            pid         INTEGER
        )
        """,
        """
        CREATE TABLE audit_log (
            id        INTEGER PRIMARY KEY,
            at        TEXT NOT NULL,
            actor     TEXT NOT NULL,
            action    TEXT NOT NULL,
            details   TEXT NOT NULL DEFAULT '{}'
        )
        """,
        """
        CREATE TABLE anime_aliases (
            alias    TEXT NOT NULL,
            anime_id INTEGER NOT NULL REFERENCES anime(anime_id) ON DELETE CASCADE,
            source   TEXT NOT NULL DEFAULT 'import',
            PRIMARY KEY (alias, anime_id)
        )
        """,
        "CREATE INDEX anime_aliases_anime ON anime_aliases(anime_id)",
        """
        CREATE TABLE kv (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
        """,
    ),
    # 2: who was seen in which group chat (for /twin and /fans: only people who used the bot
    # there), written by commands that already write, never by /recommend
    (
        """
        CREATE TABLE chat_members (
            platform TEXT NOT NULL,
            chat_id  TEXT NOT NULL,
            user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            seen_at  TEXT NOT NULL,
            PRIMARY KEY (platform, chat_id, user_id)
        ) WITHOUT ROWID
        """,
    ),
    # 3: /night lobbies survive a restart (members, picks, votes and vetoes as one JSON doc)
    (
        """
        CREATE TABLE night_lobbies (
            id         TEXT PRIMARY KEY,     -- random, carried by the lobby's buttons
            platform   TEXT NOT NULL,
            chat_id    TEXT,
            created_at REAL NOT NULL,        -- unix seconds, for expiry
            state      TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX night_lobbies_created ON night_lobbies(created_at)",
    ),
    # 4: the catalog from anime-offline-database: what each anime gains from it, the provider
    # URLs of titles without a MyAnimeList id (so their own ids stay stable across imports),
    # and related-anime links
    (
        "ALTER TABLE anime ADD COLUMN status TEXT",  # FINISHED, ONGOING, UPCOMING; NULL unknown
        "ALTER TABLE anime ADD COLUMN season TEXT",  # SPRING, SUMMER, FALL, WINTER; NULL unknown
        "ALTER TABLE anime ADD COLUMN year INTEGER",
        "ALTER TABLE anime ADD COLUMN duration_s INTEGER",  # per episode
        "ALTER TABLE anime ADD COLUMN tags TEXT NOT NULL DEFAULT ''",  # comma-separated
        "ALTER TABLE anime ADD COLUMN studios TEXT NOT NULL DEFAULT ''",  # comma-separated
        "ALTER TABLE anime ADD COLUMN picture TEXT",  # https URLs only
        "ALTER TABLE anime ADD COLUMN thumbnail TEXT",
        # 'offline' for titles the offline database added (their core fields follow it)
        "ALTER TABLE anime ADD COLUMN origin TEXT",
        """
        CREATE TABLE anime_sources (
            url      TEXT PRIMARY KEY,   -- a provider page of an anime without a MAL id
            anime_id INTEGER NOT NULL    -- its own id, at or above OWN_ID_BASE
        )
        """,
        "CREATE INDEX anime_sources_anime ON anime_sources(anime_id)",
        """
        CREATE TABLE anime_related (
            anime_id   INTEGER NOT NULL REFERENCES anime(anime_id) ON DELETE CASCADE,
            url        TEXT NOT NULL,    -- the related anime's provider page
            related_id INTEGER,          -- its catalog id when known (MAL id or own id)
            PRIMARY KEY (anime_id, url)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX anime_related_related ON anime_related(related_id)",
    ),
    # 5: notifications already sent (the seasonal radar's weekly posts and airing DMs), so that
    # none is ever sent twice, also across restarts
    (
        """
        CREATE TABLE sent_notifications (
            kind    TEXT NOT NULL,   -- weekly, airing
            target  TEXT NOT NULL,   -- PLATFORM:CHAT_ID or PLATFORM:user:USER_ID
            subject TEXT NOT NULL,   -- the week (2026-W05) or the anime id
            sent_at TEXT NOT NULL,
            PRIMARY KEY (kind, target, subject)
        ) WITHOUT ROWID
        """,
    ),
    # 6: franchises (seasons, movies and side stories of one series, in watch order), rebuilt
    # from the catalog after every catalog import; a stand-alone title has no row
    (
        """
        CREATE TABLE anime_franchise (
            anime_id     INTEGER PRIMARY KEY REFERENCES anime(anime_id) ON DELETE CASCADE,
            franchise_id INTEGER NOT NULL,   -- the smallest member's anime id
            position     INTEGER NOT NULL,   -- 0 = first in watch order
            entry        INTEGER NOT NULL    -- 1 for the franchise's entry point
        )
        """,
        "CREATE INDEX anime_franchise_group ON anime_franchise(franchise_id, position)",
    ),
]

#: A bulk ratings import drops this index while it publishes and builds it again at the end;
#: every open of the database builds it too, so a crash in between never leaves it missing.
RATINGS_ANIME_INDEX = "CREATE INDEX IF NOT EXISTS ratings_anime ON ratings(anime_id)"

#: Ids of catalog anime that have no MyAnimeList id start here (MAL's are far below).
OWN_ID_BASE = 2**30

#: The platform name under which imported data-set users live, so that a chat user can never
#: collide with a data-set user id.
DATASET_PLATFORM = "dataset"

STATUSES = ("watching", "completed", "on_hold", "dropped", "plan_to_watch", "not_interested")
