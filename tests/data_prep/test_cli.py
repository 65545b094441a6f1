"""CLI behaviour: --help, exit status 2 with one stderr line and no directory, partition end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_prep import DataError, load_prepared
from data_prep.cli import main
from data_prep.partition import read_partition

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv, cwd=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "data_prep", *map(str, argv)],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_help_of_both_commands():
    for args in (
        ["--help"],
        ["prepare", "--help"],
        ["partition", "--help"],
        ["prepare", "stackoverflow", "--help"],
    ):
        r = _run(*args)
        assert r.returncode == 0 and "usage:" in r.stdout
    assert "--scheme" in _run("partition", "--help").stdout


@pytest.mark.parametrize(
    "dataset,extra,missing",
    [
        ("fmnist", [], "train-images-idx3-ubyte"),
        ("femnist", [], "train/*.json"),
        ("cifar10", [], "data_batch_1"),
        ("imagenet100", [], "LOC_synset_mapping.txt"),
        ("stackoverflow", [], "stackoverflow.sqlite"),
        ("changelogs", ["--corpus", "changelogs"], "changelog.Debian.gz"),
    ],
)
def test_missing_source_exit_2_one_line_no_dir(tmp_path, dataset, extra, missing):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "sub" / "out"
    r = _run("prepare", dataset, "--out", out, "--source", empty, *extra)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert missing in lines[0] and str(empty) in lines[0] and "expected at" in lines[0]
    assert not out.exists() and not (tmp_path / "sub").exists()


def test_no_source_given_is_exit_2(tmp_path, capsys):
    assert main(["prepare", "femnist", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--source" in err[0]
    assert not (tmp_path / "o").exists()


def test_failure_during_build_leaves_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (src / name).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")  # truncated IDX
    assert main(["prepare", "fmnist", "--out", str(tmp_path / "o"), "--source", str(src)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_refuses_to_replace_foreign_directory(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    assert main(["prepare", "synthetic_image", "--out", str(out)]) == 2
    assert (out / "precious.txt").read_text() == "keep"
    assert main(["prepare", "synthetic_image", "--out", str(tmp_path / "ok")]) == 0
    assert (
        main(["prepare", "synthetic_image", "--out", str(tmp_path / "ok"), "--seed", "1"]) == 0
    )  # replaces own


def test_partition_cli_end_to_end(tmp_path, capsys):
    data = tmp_path / "data"
    assert (
        main(["prepare", "synthetic_image", "--out", str(data), "--n-train", "200", "--n-groups", "10"]) == 0
    )
    for scheme, extra in (
        ("dirichlet", []),
        ("iid", []),
        ("natural", []),
        ("dirichlet", ["--semantics", "clean"]),
    ):
        out = tmp_path / f"p_{scheme}_{len(extra)}"
        assert (
            main(
                [
                    "partition",
                    "--data",
                    str(data),
                    "--out",
                    str(out),
                    "--scheme",
                    scheme,
                    "--num-clients",
                    "5",
                    *extra,
                ]
            )
            == 0
        )
        parts = read_partition(out)
        info = json.loads((out / "partition.json").read_text())
        assert info["scheme"] == scheme and info["num_clients"] == 5 and len(parts) == 5
        assert info["sizes"] == [len(p) for p in parts]
        if scheme == "natural":
            assert info["sizes"] == [40] * 5
        if scheme == "iid":
            assert info["sizes"] == [40] * 5
        assert (out / "stats.csv").read_text().startswith("client,samples,class_0,")
        assert len(info["dataset_manifest_sha256"]) == 64
    # A language-model dataset has no labels: dirichlet is refused with exit 2.
    text = tmp_path / "text"
    assert main(["prepare", "synthetic_text", "--out", str(text)]) == 0
    assert (
        main(["partition", "--data", str(text), "--out", str(tmp_path / "bad"), "--scheme", "dirichlet"]) == 2
    )
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "so"
    assert (
        main(
            [
                "partition",
                "--data",
                str(text),
                "--out",
                str(out),
                "--scheme",
                "stackoverflow_iid",
                "--num-clients",
                "3",
            ]
        )
        == 0
    )
    assert json.loads((out / "partition.json").read_text())["sizes"] == [133, 133, 134]
    assert (out / "stats.csv").read_text().splitlines()[0] == "client,samples"
    assert np.concatenate(read_partition(out, data_dir=text)).size == len(load_prepared(text).train_x)
    # The partition is tied to the dataset version it was computed on.
    assert main(["prepare", "synthetic_text", "--out", str(text), "--seed", "5"]) == 0
    with pytest.raises(DataError, match="different version"):
        read_partition(out, data_dir=text)


def test_partition_refuses_corrupt_dataset(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["prepare", "synthetic_image", "--out", str(data)]) == 0
    (data / "train_y.npy").write_bytes(b"junk")
    assert main(["partition", "--data", str(data), "--out", str(tmp_path / "p"), "--scheme", "iid"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "train_y.npy" in err[0] and "python -m data_prep prepare synthetic_image" in err[0]
    )
