"""Bad inputs to `python -m data_prep`: one line, exit 2, nothing of the user's removed, nothing left behind."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from data_prep.cli import main
from data_prep.staging import clean_stale

from . import formats


def _err(capsys):
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def data(tmp_path):
    out = tmp_path / "data"
    assert main(["prepare", "synthetic_image", "--out", str(out)]) == 0
    return out


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_prepare_never_removes_user_files(tmp_path, data, capsys):
    (data / "notes.txt").write_text("mine")  # a user's file inside a prepared dataset
    assert main(["prepare", "synthetic_image", "--out", str(data)]) == 2
    assert "notes.txt" in _err(capsys)
    assert (data / "notes.txt").read_text() == "mine" and (data / "manifest.json").is_file()


def test_prepare_replaces_its_own_output(tmp_path, data):
    assert main(["prepare", "synthetic_image", "--out", str(data)]) == 0
    assert (data / "manifest.json").is_file()


def test_foreign_manifest_does_not_license_deletion(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # someone else's manifest.json
    (out / "thesis.tex").write_text("x")
    assert main(["prepare", "synthetic_image", "--out", str(out)]) == 2
    _err(capsys)
    assert (out / "thesis.tex").exists()


@pytest.mark.parametrize("where", ["same", "inside"])
def test_partition_out_overlapping_data_is_refused(tmp_path, data, capsys, where):
    before = _listing(data)
    out = data if where == "same" else data / "part"
    assert main(["partition", "--data", str(data), "--out", str(out), "--scheme", "iid"]) == 2
    assert "overlap" in _err(capsys)
    assert _listing(data) == before


@pytest.mark.parametrize("where", ["same", "source-inside-out"])
def test_prepare_out_holding_the_source_is_refused(tmp_path, capsys, where):
    src = _idx_source(tmp_path)
    before = _listing(src)
    out = src if where == "same" else tmp_path
    assert main(["prepare", "fmnist", "--source", str(src), "--out", str(out)]) == 2
    assert "lies in --out" in _err(capsys)
    assert _listing(src) == before


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--num-clients", "0"], "--num-clients"),
        (["--num-clients", "-3"], "--num-clients"),
        (["--num-clients", "100000"], "--num-clients"),  # more clients than samples
        (["--scheme", "dirichlet", "--alpha", "nan"], "--alpha"),
        (["--scheme", "dirichlet", "--alpha", "inf"], "--alpha"),
        (["--scheme", "dirichlet", "--alpha", "0"], "--alpha"),
        (["--seed", "-1"], "--seed"),
        (["--scheme", "natural", "--num-clients", "1500"], "--num-clients"),
    ],
)
def test_bad_partition_arguments(tmp_path, data, capsys, args, expected):
    argv = ["partition", "--data", str(data), "--out", str(tmp_path / "p")]
    if "--scheme" not in args:
        argv += ["--scheme", "iid"]
    assert main(argv + args) == 2
    assert expected in _err(capsys)
    assert not (tmp_path / "p").exists()


def _idx_source(tmp_path):
    rs = np.random.RandomState(0)
    src = tmp_path / "src"
    src.mkdir()
    formats.write_idx(src / "train-images-idx3-ubyte.gz", rs.randint(0, 256, (7, 28, 28)))
    formats.write_idx(src / "train-labels-idx1-ubyte.gz", np.arange(7) % 10)
    formats.write_idx(src / "t10k-images-idx3-ubyte.gz", rs.randint(0, 256, (3, 28, 28)))
    formats.write_idx(src / "t10k-labels-idx1-ubyte.gz", np.arange(3))
    return src


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bad-crc"])
def test_corrupt_gz_source_is_one_line(tmp_path, capsys, damage):
    src = _idx_source(tmp_path)
    f = src / "train-images-idx3-ubyte.gz"
    raw = f.read_bytes()
    if damage == "truncated":
        f.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        f.write_bytes(b"\x1f\x8b" + b"\xff" * 50)
    else:
        f.write_bytes(raw[:-8] + b"\0\0\0\0" + raw[-4:])
    assert main(["prepare", "fmnist", "--source", str(src), "--out", str(tmp_path / "out")]) == 2
    assert "train-images-idx3-ubyte.gz" in _err(capsys)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temp folder left


def test_stale_temp_folders_are_cleaned(tmp_path):
    out = tmp_path / "data"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free
    stale = tmp_path / f".data.tmp-{dead.pid}-abc"
    stale.mkdir()
    (stale / "train_x.npy").write_bytes(b"x" * 100)
    live = tmp_path / f".data.tmp-{os.getpid()}-def"  # a preparation still running: kept
    live.mkdir()
    old = tmp_path / f".data.tmp-{os.getpid()}-old"  # but not forever
    old.mkdir()
    os.utime(old, (0, 0))
    unrelated = tmp_path / ".other.tmp-1-x"
    unrelated.mkdir()
    assert main(["prepare", "synthetic_image", "--out", str(out)]) == 0
    assert not stale.exists() and not old.exists() and live.exists() and unrelated.exists()
    assert clean_stale(out) == []


def test_gzip_helper_produces_real_gz(tmp_path):
    src = _idx_source(tmp_path)
    with gzip.open(src / "t10k-labels-idx1-ubyte.gz") as f:
        assert len(f.read()) == 8 + 3
