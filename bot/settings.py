"""Settings: one pydantic-settings object, built once at start (environment, then ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.identity import identity_key


class Settings(BaseSettings):
    """Everything configurable about Anirec. Tokens are secrets: never printed, never logged."""

    model_config = SettingsConfigDict(
        env_prefix="ANIREC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database: Path = Field(Path("./anirec.db"), description="the SQLite database file")
    model_dir: Path = Field(Path("./models"), description="where checkpoints are kept")
    data_dir: Path = Field(Path("./data"), description="the public data set for `anirec demo`")
    discord_token: SecretStr | None = None
    telegram_token: SecretStr | None = None
    telegram_api_root: str | None = Field(
        None,
        description="a self-hosted Bot API server, e.g. http://127.0.0.1:8081 "
        "(default: https://api.telegram.org)",
    )
    admins: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(), description="admin identities, e.g. telegram:123,discord:456,console:alice"
    )
    admin_role: str | None = Field(None, description="a Discord role name whose members are admins")
    admin_chat: str | None = Field(None, description="PLATFORM:CHAT_ID told of every retrain")
    retrain_cron: str = Field("30 3 * * *", description="crontab for scheduled retraining")
    catalog_url: str | None = Field(
        None,
        description="where the scheduled catalog refresh downloads the anime-offline-database "
        "(its -minified.json or .jsonl release asset); unset: no refresh",
    )
    catalog_cron: str = Field("0 6 * * 1", description="crontab for the catalog refresh")
    catalog_max_mb: int = Field(512, ge=1, description="largest catalog download accepted")
    retrain_keep: int = Field(5, ge=2, description="model versions kept on disk")
    trainer_python: Path | None = Field(
        None,
        description="the Python that runs the trainer (e.g. the PyTorch/XLA virtualenv's "
        "on a TPU host); default: the bot's own",
    )
    device: Literal["auto", "cpu", "cuda", "xla"] = "auto"
    log_level: str = "INFO"

    @field_validator("admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("catalog_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and not value.startswith(("https://", "http://")):
            raise ValueError("ANIREC_CATALOG_URL must be an http(s) URL")
        return value.strip() or None if value is not None else None

    def is_admin(self, platform: str, user_id: str | int) -> bool:
        return identity_key(platform, user_id) in self.admins

    @property
    def catalog_csv(self) -> Path:
        return self.data_dir / "anime" / "catalog.csv"

    @property
    def ratings_csv(self) -> Path:
        return self.data_dir / "anime" / "animelist.csv"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
