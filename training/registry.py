"""Model versions on disk and the pointer to the one being served.

Layout under ``model_dir``::

    versions/v0001/model.safetensors   one folder per trained candidate (plus its loss plot)
    versions/v0002/...
    SERVING                            JSON: {"version": "v0002", "history": ["v0002", "v0001"]}
    serving.safetensors                legacy: a checkpoint written by `anirec train`/`demo`

Why a pointer file and folders: promotion is then a single ``os.replace`` of a small file (write
a temporary file, fsync, rename, fsync the folder), so a kill -9 at any moment leaves either the
old or the new pointer, and both name complete checkpoints. A candidate is trained into a
``.tmp-*`` folder and renamed into ``versions/`` only once its checkpoint is complete, so a
half-written candidate is never under a version name; leftovers are removed on the next start.
``history`` lists promoted versions newest first: when the serving checkpoint turns out to be
corrupt, the previous promoted one is served instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from recommender.atomic import TMP_PREFIX, atomic_write, fsync_dir

if TYPE_CHECKING:
    from storage.repository import Store
    from storage.rows import ModelVersion

log = logging.getLogger(__name__)

T = TypeVar("T")

POINTER = "SERVING"
VERSIONS = "versions"
CHECKPOINT = "model.safetensors"
LEGACY = "serving.safetensors"
DEFAULT_KEEP = 5  # model versions kept on disk (plus the served one and its fallback)
_VERSION_RE = re.compile(r"^v(\d{4,})$")


class RegistryError(Exception):
    """The registry cannot do what was asked (unknown version, bad pointer file...)."""


@dataclass(frozen=True)
class Pointer:
    """The content of the SERVING file: the served version first, earlier promotions after."""

    version: str
    history: tuple[str, ...]
    updated_at: str = ""


class Registry:
    """Versions of the model under ``model_dir`` (see the module docstring)."""

    def __init__(self, model_dir: str | Path, keep: int = DEFAULT_KEEP) -> None:
        self.root = Path(model_dir)
        self.versions_dir = self.root / VERSIONS
        self.keep = max(2, int(keep))  # always room for the served one and its fallback

    # -- names and paths ---------------------------------------------------------------------
    def checkpoint(self, version: str) -> Path:
        if not _VERSION_RE.match(version):
            raise RegistryError(f"not a version name: {version!r} (expected e.g. v0003)")
        return self.versions_dir / version / CHECKPOINT

    def versions(self) -> list[str]:
        """Complete versions on disk, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        names = [
            p.name
            for p in self.versions_dir.iterdir()
            if p.is_dir() and _VERSION_RE.match(p.name) and (p / CHECKPOINT).is_file()
        ]
        return sorted(names, key=lambda n: int(n[1:]))

    def next_version(self) -> str:
        """The name the next committed candidate gets (one higher than any folder present)."""
        numbers = [0]
        if self.versions_dir.is_dir():
            numbers += [
                int(m.group(1))
                for p in self.versions_dir.iterdir()
                if (m := _VERSION_RE.match(p.name))
            ]
        pointer = self.pointer()
        if pointer:
            numbers += [int(v[1:]) for v in pointer.history if _VERSION_RE.match(v)]
        return f"v{max(numbers) + 1:04d}"

    @property
    def legacy_path(self) -> Path:
        return self.root / LEGACY

    # -- the pointer -------------------------------------------------------------------------
    def pointer(self) -> Pointer | None:
        path = self.root / POINTER
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            version = str(doc["version"])
            history = tuple(str(v) for v in doc.get("history", [version]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error(
                "model registry: the pointer file %s is unreadable (%s); ignoring it", path, exc
            )
            return None
        if version not in history:
            history = (version, *history)
        return Pointer(version, history, str(doc.get("updated_at", "")))

    def _write_pointer(self, version: str, history: tuple[str, ...]) -> Pointer:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        doc = {"version": version, "history": list(history), "updated_at": now}
        atomic_write(self.root / POINTER, json.dumps(doc, indent=1) + "\n")
        return Pointer(version, history, now)

    def serving_version(self) -> str | None:
        pointer = self.pointer()
        return pointer.version if pointer else None

    def serving_path(self) -> Path | None:
        """The checkpoint to serve: the pointer's version, else the legacy file, else None."""
        for _version, path in self.serving_chain():
            return path
        return None

    def serving_chain(self) -> list[tuple[str | None, Path]]:
        """Checkpoints to try in order: the served version, earlier promotions, the legacy file.

        Only paths that exist are listed; ``None`` as the version marks the legacy file.
        """
        chain: list[tuple[str | None, Path]] = []
        pointer = self.pointer()
        if pointer:
            for version in pointer.history:
                try:
                    path = self.checkpoint(version)
                except RegistryError:
                    continue
                if path.is_file():
                    chain.append((version, path))
        if self.legacy_path.is_file():
            chain.append((None, self.legacy_path))
        return chain

    # -- candidates ----------------------------------------------------------------------------
    def new_workdir(self, run_id: int | str) -> Path:
        """A fresh temporary folder for a candidate being trained (removed if never committed)."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}run{run_id}-", dir=self.versions_dir))

    def commit(self, workdir: Path, version: str | None = None) -> str:
        """Rename a finished work folder (holding ``model.safetensors``) to a version folder.

        ``version`` defaults to the next free name; the rename fails rather than overwrite.
        """
        workdir = Path(workdir)
        if not (workdir / CHECKPOINT).is_file():
            raise RegistryError(f"{workdir}: no {CHECKPOINT} to commit")
        fsync_dir(workdir)
        version = version or self.next_version()
        self.checkpoint(version)  # validates the name
        if (self.versions_dir / version).exists():
            raise RegistryError(f"version {version} already exists")
        os.rename(workdir, self.versions_dir / version)
        fsync_dir(self.versions_dir)
        return version

    def promote(self, version: str) -> Pointer:
        """Serve ``version`` from now on (atomic pointer swap); older promotions stay listed."""
        if not self.checkpoint(version).is_file():
            raise RegistryError(f"version {version} has no checkpoint on disk")
        pointer = self.pointer()
        previous = pointer.history if pointer else ()
        history = (version, *[v for v in previous if v != version])
        return self._write_pointer(version, history)

    # -- housekeeping --------------------------------------------------------------------------
    def leftovers(self) -> list[Path]:
        """Temporary folders and files left by a killed trainer or promotion (read only)."""
        found: list[Path] = []
        for folder in (self.root, self.versions_dir):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name.startswith(TMP_PREFIX) or (
                    path.name.startswith(".") and path.name.endswith(".tmp")
                ):
                    found.append(path)
        for version in self.versions():  # checkpoint temp files inside a version folder
            found.extend((self.versions_dir / version).glob(".*.tmp"))
        return found

    def cleanup(self) -> list[Path]:
        """Remove what :meth:`leftovers` finds."""
        removed = self.leftovers()
        for path in removed:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if removed:
            log.info("model registry: removed %d leftover temporary file(s)", len(removed))
        return removed

    def prune(self) -> list[str]:
        """Keep the ``keep`` newest versions, the served one and its fallback; delete the rest."""
        versions = self.versions()
        pointer = self.pointer()
        protected = set(pointer.history[:2]) if pointer else set()
        keep = set(versions[-self.keep :]) | protected
        removed = []
        for version in versions:
            if version not in keep:
                shutil.rmtree(self.versions_dir / version, ignore_errors=True)
                removed.append(version)
        if removed:
            fsync_dir(self.versions_dir)
            pointer = self.pointer()
            if pointer:  # forget deleted versions in the fallback history
                history = tuple(v for v in pointer.history if v not in removed)
                if history != pointer.history:
                    self._write_pointer(pointer.version, history)
        return removed


def _same_path(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return str(a) == str(b)


def _version_tail(path: str | Path) -> tuple[str, ...] | None:
    parts = Path(path).parts
    if len(parts) >= 3 and parts[-3] == VERSIONS and _VERSION_RE.match(parts[-2]):
        return parts[-3:]
    return None


def version_row(store: Store, path: str | Path) -> ModelVersion | None:
    """The model_versions row that points at ``path`` (newest first), if any.

    A version path also matches by its ``versions/vNNNN/model.safetensors`` tail, so rows stay
    attached when the model folder is moved or restored from a backup elsewhere.
    """
    rows = store.versions.all()
    for row in rows:
        if _same_path(row.path, path):
            return row
    tail = _version_tail(path)
    if tail is not None:
        for row in rows:
            if _version_tail(row.path) == tail:
                return row
    return None


@dataclass(frozen=True)
class Served(Generic[T]):
    """What :func:`load_serving` loaded: the version (None: the legacy file), its path, the
    loaded object, and the versions before it in the chain that failed to load."""

    version: str | None
    path: Path
    loaded: T
    failed: tuple[tuple[str | None, Path], ...] = ()


def load_serving(registry: Registry, loader: Callable[[Path], T]) -> Served[T] | None:
    """The one resolver of the serving model: load the served checkpoint with ``loader(path)``,
    falling back past checkpoints that fail to load to the previous promoted version.

    Returns None when nothing loads. A checkpoint that fails is logged loudly and listed in
    ``failed``; the pointer is never changed here (reading needs no write access, and a file
    restored later serves again on the next load).
    """
    from recommender.checkpoint import CheckpointError

    failed: list[tuple[str | None, Path]] = []
    for version, path in registry.serving_chain():
        try:
            loaded = loader(path)
        except (CheckpointError, OSError, ValueError) as exc:
            log.error(
                "!!! SERVING CHECKPOINT UNUSABLE: %s (version %s): %s -- falling back to "
                "the previous promoted version",
                path,
                version or "legacy",
                exc,
            )
            failed.append((version, path))
            continue
        return Served(version, path, loaded, tuple(failed))
    return None


def record_serving(store: Store, served: Served[Any] | None, failed: Iterable[Path] = ()) -> None:
    """Bring the model_versions rows in line with what serves: checkpoints that failed to load
    are marked ``failed``, the one that loaded is ``serving``."""
    for path in failed:
        row = version_row(store, path)
        if row is not None and row.status != "failed":
            store.versions.set_status(row.id, "failed")
    if served is None:
        return
    row = version_row(store, served.path)
    if row is not None and row.status != "serving":
        store.versions.promote(row.id)
