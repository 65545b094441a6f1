"""Prepared-data contract: write, load, verify, refuse."""

import json

import numpy as np
import pytest

from data_prep import DataError, load_prepared, synthetic


def _write_image(tmp_path):
    out = tmp_path / "img"
    out.mkdir()
    data = synthetic.make_image(n_train=50, n_test=20, num_classes=5, seed=1)
    synthetic.write_image(out, data)
    return out, data


def test_image_roundtrip(tmp_path):
    out, data = _write_image(tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["task"] == "image" and m["counts"] == {"train": 50, "test": 20}
    assert set(m["files"]) == {"train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy", "train_group.npy"}
    assert m["pixel"] == {"invert": False, "mean": [0.5], "std": [0.5]} and m["shape"] == [1, 28, 28]
    p = load_prepared(out)
    np.testing.assert_array_equal(p.train_x, data.train_x)
    assert p.train_x.dtype == np.uint8 and p.train_y.dtype == np.int64 and p.test_group is None
    assert p.num_classes == 5 and p.shape == (1, 28, 28) and p.name == "synthetic_image"


def test_text_roundtrip(tmp_path):
    out = tmp_path / "txt"
    out.mkdir()
    synthetic.write_text(out, synthetic.make_text(n_train=30, n_test_chunks=4, vocab_size=12, seq_len=8))
    p = load_prepared(out)
    assert p.task == "lm" and p.train_y is None and p.test_y is None
    assert p.train_x.shape == (30, 8) and p.train_x.dtype == np.int32 and p.test_x.shape == (4, 21)
    assert p.vocab_size == 12 and len((out / "vocab.txt").read_text().splitlines()) == 12
    assert "vocab.txt" in p.manifest["files"] and p.manifest["seq_len"] == 8


def test_tampered_file_is_refused_with_rebuild_command(tmp_path):
    out, _ = _write_image(tmp_path)
    y = np.load(out / "train_y.npy")
    y[0] = (y[0] + 1) % 5
    np.save(out / "train_y.npy", y)
    with pytest.raises(DataError, match=r"train_y\.npy.*python -m data_prep prepare synthetic_image"):
        load_prepared(out)
    load_prepared(out, verify=False)  # explicit opt-out still loads


def test_missing_file_and_missing_manifest(tmp_path):
    out, _ = _write_image(tmp_path)
    (out / "test_x.npy").unlink()
    with pytest.raises(DataError, match=r"test_x\.npy is missing"):
        load_prepared(out)
    with pytest.raises(DataError, match="manifest.json is missing"):
        load_prepared(tmp_path / "nowhere")



def test_checksums_verified_once_then_trusted_until_a_file_changes(tmp_path, monkeypatch):
    """A prepared dataset is hashed by the first load, not by every run (issue 9); a file that changed
    since (new size or modification time) is hashed again and refused."""
    import os

    from data_prep import manifest as M

    out, _ = _write_image(tmp_path)
    calls = []
    real = M.sha256_file
    monkeypatch.setattr(M, "sha256_file", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    load_prepared(out)
    first = len(calls)
    assert first == 5 and (out / M.VERIFIED).is_file()
    load_prepared(out)
    assert len(calls) == first, "the second load re-hashed unchanged files"
    f = out / "train_y.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    os.utime(f, ns=(1, 1))
    with pytest.raises(DataError, match=r"train_y\.npy"):
        load_prepared(out)
