"""The command line: config errors exit 2 with one line and leave no result files; kill + rerun resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "config" / "examples" / "tiny.yaml"


def fedgmr(*args, **kw):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "fedgmr", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=kw.get("timeout", 120),
    )


def test_methods_lists_every_registered_method():
    from fedgmr.methods.registry import METHODS

    out = fedgmr("methods").stdout.splitlines()
    assert [line.split()[0] for line in out] == sorted(METHODS)


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"trainig": {}}, "trainig"),
        ({"training": {"lrr": 0.1}}, "training.lrr"),
        ({"training": {"lr": -1}}, "training.lr"),
        ({"clients": {"heterogeneity": "extreme"}}, "clients.heterogeneity"),
        ({"method": "nope"}, "method"),
        ({"dataset": {"name": "cifar10"}}, "dataset.root"),
        ({"dataset": {"name": "cifar10", "root": "/nonexistent"}}, "dataset.root"),
        ({"semantics": "dirty"}, "semantics"),
        ({"schedule": {"interval": 0}}, "schedule.interval"),
        ({"fixed_density": 0.3}, "fixed_density"),
    ],
)
def test_bad_config_exits_2_with_one_line_and_no_files(tmp_path, patch, key):
    raw = yaml.safe_load(TINY.read_text())
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k] |= v
        else:
            raw[k] = v
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    proc = fedgmr("run", str(cfg), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and key in lines[0], proc.stderr
    assert not out.exists()


def test_missing_config_file(tmp_path):
    proc = fedgmr("run", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "not found" in proc.stderr


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    args = ["--set", "schedule.max_rounds=60", "--set", "run.checkpoint_every=1", "--no-progress"]
    ref = fedgmr("run", str(TINY), "--out", str(tmp_path / "ref"), *args, timeout=300)
    assert ref.returncode == 0, ref.stderr
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedgmr", "run", str(TINY), "--out", str(tmp_path / "k"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ck = tmp_path / "k" / "checkpoint" / "state.pt"
    deadline = time.time() + 200
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = fedgmr("run", str(TINY), "--out", str(tmp_path / "k"), *args, timeout=300)
    assert again.returncode == 0, again.stderr
    # The tidy results are pure functions of the config: byte-identical after a SIGKILL and a rerun.
    assert (tmp_path / "k" / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()
    assert (tmp_path / "k" / "clients.csv").read_bytes() == (tmp_path / "ref" / "clients.csv").read_bytes()
