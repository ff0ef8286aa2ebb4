"""Checkpoints: round trip, atomic write, and refusal of damaged or foreign files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from recommender.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from recommender.model import get_config
from recommender.scoring import ServingModel
from tests import model_synth
from training.train import fit


@pytest.fixture(scope="module")
def model():
    df, _ = model_synth.ratings(120, seed=2)
    cfg = get_config(
        "default", epochs=3, batch_size=64, dim=8, genre_hidden=8, ease_min_count=2, knn_topk=16
    )
    return fit(df, model_synth.catalog(), cfg, seed=0).serving


@pytest.fixture
def saved(model, tmp_path):
    return model.save(tmp_path / "m.safetensors")


def test_round_trip_gives_identical_predictions(model, saved):
    loaded = ServingModel.load(saved)
    for ids, scores in (([100, 101, 150], [9, None, 3]), ([], [])):
        a, b = model.fold_in(ids, scores), loaded.fold_in(ids, scores)
        assert np.array_equal(model.predict(a), loaded.predict(b))
        assert np.array_equal(model.rank(a), loaded.rank(b))
    assert np.array_equal(loaded.anime_ids, model.anime_ids)
    assert loaded.genre_vocab == model.genre_vocab
    assert np.array_equal(loaded.item_genres, model.item_genres)
    assert np.array_equal(loaded.item_vectors, model.item_vectors)
    assert loaded.blend == model.blend
    assert (loaded.mix_few, loaded.mix_many, loaded.few_max) == (
        model.mix_few,
        model.mix_many,
        model.few_max,
    )
    assert loaded.version == model.version and loaded.metrics == model.metrics
    meta = read_metadata(saved)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["score_range"] == [1.0, 10.0]
    assert meta["torch_version"] == torch.__version__
    assert len(meta["fingerprint"]) == 64 and meta["trained_at"]


def test_seed_round_trip(tmp_path):
    df, _ = model_synth.ratings(60, seed=4)
    serving = fit(df, model_synth.catalog(), get_config("seed", epochs=2, batch_size=256)).serving
    path = serving.save(tmp_path / "seed.safetensors")
    loaded = ServingModel.load(path)
    state = loaded.fold_in([100, 120], [8, 3])
    assert np.allclose(
        serving.predict(serving.fold_in([100, 120], [8, 3])), loaded.predict(state), atol=1e-5
    )


def test_write_is_atomic_and_leaves_no_temp_files(model, tmp_path):
    path = tmp_path / "sub" / "m.safetensors"
    model.save(path)
    first = path.read_bytes()
    model.save(path, version="v2")
    assert read_metadata(path)["version"] == "v2"
    assert path.read_bytes() != first
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize("keep", [0, 5, 100, -10])
def test_truncated_file_is_refused(saved, tmp_path, keep):
    blob = saved.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(blob[:keep])
    with pytest.raises(CheckpointError, match="truncated|corrupt|not an anirec"):
        ServingModel.load(bad)


def test_flipped_byte_in_weights_is_refused(saved):
    blob = bytearray(saved.read_bytes())
    blob[-100] ^= 0xFF
    saved.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt"):
        ServingModel.load(saved)


def test_foreign_and_missing_files_are_refused(tmp_path):
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(other))
    with pytest.raises(CheckpointError, match="not an anirec checkpoint"):
        ServingModel.load(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a model at all")
    with pytest.raises(CheckpointError):
        ServingModel.load(text)
    with pytest.raises(CheckpointError, match="not found"):
        ServingModel.load(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="directory"):
        ServingModel.load(tmp_path)


def test_other_format_version_is_refused(saved, tmp_path):
    ck = load_checkpoint(saved)
    meta = dict(ck.meta)
    path = tmp_path / "v.safetensors"
    save_checkpoint(path, ck.tensors, meta)
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    doc = json.loads(header["__metadata__"]["anirec"])
    doc["format_version"] = FORMAT_VERSION + 1
    header["__metadata__"]["anirec"] = json.dumps(doc)
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + n :])
    with pytest.raises(CheckpointError, match="format version"):
        ServingModel.load(path)


def test_shape_mismatch_is_refused(saved, tmp_path):
    ck = load_checkpoint(saved)
    tensors = dict(ck.tensors)
    tensors["model.item_bias.weight"] = torch.zeros(3, 1)  # consistent file, wrong model
    path = tmp_path / "shape.safetensors"
    save_checkpoint(path, tensors, ck.meta)
    with pytest.raises(CheckpointError, match="does not fit"):
        ServingModel.load(path)
