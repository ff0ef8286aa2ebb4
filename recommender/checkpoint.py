"""The checkpoint format: ONE safetensors file that carries its JSON metadata in its header.

Layout (safetensors): 8-byte little-endian header length, the JSON header, the tensor bytes.
The header's ``__metadata__`` holds one key, ``anirec``, whose value is our JSON document:
format version, model config and shape, genre vocabulary, score scale, a fingerprint of the
training data, metrics, torch version, trained_at, the serving blend, the list of expected
tensors and a SHA-256 of the tensor bytes. One file means one atomic rename: there is never a
weights file without its metadata or the other way round. The write goes to a temporary file in
the same folder, is fsync'ed, renamed over the target, and the folder is fsync'ed.

Loading checks the size, the header, the format version, the hash and every tensor's shape, and
raises :class:`CheckpointError` with a one-line reason on any mismatch. A file written by
PyTorch/XLA loads on plain CPU torch (tensors are moved to CPU before saving).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from recommender.atomic import atomic_write

MODEL_PREFIX = "model."  # tensors of the network; the rest are anime-side tables

FORMAT = "anirec-checkpoint"
FORMAT_VERSION = 1
MAX_HEADER = 100 * 2**20


class CheckpointError(Exception):
    """The file is missing, truncated, corrupt, or of another format or version."""


@dataclass
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


def save_checkpoint(
    path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` + ``meta`` atomically to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    doc = dict(meta)
    doc["format"] = FORMAT
    doc["format_version"] = FORMAT_VERSION
    doc["torch_version"] = torch.__version__
    doc["tensors"] = {
        k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in cpu.items()
    }
    # hash of the data section: serialise once without the hash to learn the byte layout
    doc["data_sha256"] = ""
    probe = st_save(cpu, metadata={"anirec": json.dumps(doc)})
    doc["data_sha256"] = hashlib.sha256(_data_section(probe)).hexdigest()
    blob = st_save(cpu, metadata={"anirec": json.dumps(doc, sort_keys=True)})
    if _data_section(blob) != _data_section(probe):  # layout must not depend on the header
        raise CheckpointError("internal error: tensor layout changed between serialisations")
    atomic_write(path, blob)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Only the JSON document (no tensors): cheap, for listings and `/model`."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: truncated checkpoint (no header)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                raise CheckpointError(f"{path}: not an anirec checkpoint (header size {n})")
            header = fh.read(n)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from None
    return _parse_header(path, header, n)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint; any problem raises :class:`CheckpointError`."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror})") from None
    if len(blob) < 8:
        raise CheckpointError(f"{path}: truncated checkpoint ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER or 8 + n > len(blob):
        raise CheckpointError(f"{path}: truncated or not an anirec checkpoint (bad header length)")
    meta = _parse_header(path, blob[8 : 8 + n], n)
    digest = hashlib.sha256(blob[8 + n :]).hexdigest()
    if digest != meta.get("data_sha256"):
        raise CheckpointError(f"{path}: corrupt checkpoint (tensor data does not match its hash)")
    try:
        tensors = st_load(blob)
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from None
    expected = meta.get("tensors", {})
    if set(expected) != set(tensors):
        raise CheckpointError(f"{path}: checkpoint tensors do not match its metadata")
    for name, (dtype, shape) in expected.items():
        t = tensors[name]
        if list(t.shape) != list(shape) or str(t.dtype).removeprefix("torch.") != dtype:
            raise CheckpointError(
                f"{path}: tensor {name} has shape {list(t.shape)} {t.dtype}, "
                f"expected {shape} {dtype}"
            )
    return Checkpoint(tensors=tensors, meta=meta)


def _parse_header(path: Path, header: bytes, n: int) -> dict[str, Any]:
    if len(header) < n:
        raise CheckpointError(f"{path}: truncated checkpoint (header cut short)")
    try:
        outer = json.loads(header)
        doc = json.loads(outer["__metadata__"]["anirec"])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path}: not an anirec checkpoint (no anirec metadata)") from None
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an anirec checkpoint (format {doc.get('format')!r})")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported (this build reads "
            f"version {FORMAT_VERSION}); retrain with `anirec train`"
        )
    meta: dict[str, Any] = doc
    return meta


def _data_section(blob: bytes) -> bytes:
    (n,) = struct.unpack("<Q", blob[:8])
    return blob[8 + n :]


def module_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's state dict inside a checkpoint's tensors."""
    return {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


def checkpoint_tensors(
    module: torch.nn.Module,
    anime_ids: np.ndarray,
    item_genres: np.ndarray,
    popularity: np.ndarray,
    ease_index: np.ndarray | None,
    ease_value: np.ndarray | None,
    knn_index: np.ndarray | None = None,
    knn_value: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint holds. The module's branch input is stored as uint8: as
    ``item_genres`` when it is the genres, else as ``item_content`` beside them."""
    state = module.state_dict()
    tensors = {MODEL_PREFIX + k: v.detach().cpu() for k, v in state.items() if k != "item_genres"}
    tensors["anime_ids"] = torch.from_numpy(np.asarray(anime_ids, np.int64))
    tensors["item_genres"] = torch.from_numpy(np.asarray(item_genres, np.uint8))
    if getattr(module, "content", False):  # 0/1 content features, stored as bytes
        tensors["item_content"] = state["item_genres"].detach().cpu().to(torch.uint8)
    tensors["popularity"] = torch.from_numpy(np.asarray(popularity, np.float32))
    if ease_index is not None and ease_value is not None:
        tensors["ease.index"] = torch.from_numpy(np.asarray(ease_index, np.int32))
        tensors["ease.value"] = torch.from_numpy(np.asarray(ease_value, np.float32))
    if knn_index is not None and knn_value is not None:
        tensors["knn.index"] = torch.from_numpy(np.asarray(knn_index, np.int32))
        tensors["knn.value"] = torch.from_numpy(np.asarray(knn_value, np.float32))
    return tensors
