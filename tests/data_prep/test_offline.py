"""Preparing FEMNIST from local parquet files reaches no network and needs no Hugging Face client (issue 8, 11/21)."""

import socket
import sys

import numpy as np
import pytest

from data_prep import load_prepared
from data_prep.cli import main

from . import formats


def _femnist_parquet(folder, n=12):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rs = np.random.RandomState(5)
    imgs = rs.randint(0, 256, (n, 28, 28)).astype(np.uint8)
    table = pa.table(
        {
            "image": [{"bytes": formats.png_bytes(im), "path": None} for im in imgs],
            "writer_id": [f"w{i % 2}" for i in range(n)],
            "character": (np.arange(n) % 62).tolist(),
            "hsf_id": [0] * n,
        }
    )
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "train-00000-of-00001.parquet")
    return imgs


def test_femnist_parquet_without_hub_or_network(tmp_path, monkeypatch):
    imgs = _femnist_parquet(tmp_path / "hf")
    # Importing either Hugging Face package, or opening any socket, fails the preparation.
    for mod in ("datasets", "huggingface_hub"):
        monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert main(["prepare", "femnist", "--out", str(tmp_path / "out"), "--source", str(tmp_path / "hf")]) == 0
    p = load_prepared(tmp_path / "out")
    assert p.manifest["counts"] == {"train": 10, "test": 2}
    j = int(p.train_y[0])
    np.testing.assert_array_equal(p.train_x[0, 0], 255 - imgs[j])


@pytest.mark.parametrize(
    "payload", [b"not a png", b"\x89PNG\r\n\x1a\n" + b"\0" * 10, None], ids=["garbage", "truncated", "null"]
)
def test_femnist_parquet_bad_image_is_one_line(tmp_path, capsys, payload):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "hf").mkdir()
    table = pa.table(
        {
            "image": [{"bytes": payload, "path": None}] * 2,
            "writer_id": ["w0", "w0"],
            "character": [1, 2],
            "hsf_id": [0, 0],
        }
    )
    pq.write_table(table, tmp_path / "hf" / "train.parquet")
    assert main(["prepare", "femnist", "--out", str(tmp_path / "out"), "--source", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("could not be decoded" in err or "not encoded image bytes" in err)
    assert not (tmp_path / "out").exists()


def test_femnist_corrupt_parquet_file_is_one_line(tmp_path, capsys):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "train.parquet").write_bytes(b"PAR1 but not really")
    assert main(["prepare", "femnist", "--out", str(tmp_path / "out"), "--source", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable parquet file" in err
