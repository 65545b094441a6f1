"""Bad inputs to `python -m fedgmr run`: each one exits 2 with one line naming the problem and leaves nothing.

The table is the contract for the next key added: append a row per new key or argument. Cases run in-process
(``fedgmr.cli.main``), so the table stays fast; a few subprocess cases check the real entry point.
"""

import os
import subprocess
import sys
import time

import pytest
import yaml

from fedgmr.cli import main
from fedgmr.runlock import LOCK_NAME, run_lock

from .test_cli import ROOT, TINY

BASE = yaml.safe_load(TINY.read_text())


def _with(section, key, value):
    raw = yaml.safe_load(TINY.read_text())
    raw.setdefault(section, {})[key] = value
    return yaml.safe_dump(raw)


def _bomb(template):
    """Billion laughs: 10^9 leaves once expanded; PyYAML builds it cheaply with shared references."""
    items = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        items.append(f"&l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]")
    return template.replace("BOMB", "[" + ", ".join(items) + "]") + "\n"


# (id, config text or bytes, expected text in the single error line)
CONFIG_CASES = [
    ("lr-nan", _with("training", "lr", float("nan")), "training.lr"),
    ("lr-inf", _with("training", "lr", float("inf")), "training.lr"),
    ("gamma-nan", _with("training", "lr_schedule", {"kind": "step", "step": 5, "gamma": float("nan")}), "lr_schedule.gamma"),
    ("schedule-kind", _with("training", "lr_schedule", {"kind": "cosine"}), "lr_schedule.kind"),
    ("schedule-missing", _with("training", "lr_schedule", {"kind": "step", "gamma": 0.5}), "lr_schedule.step"),
    ("schedule-extra", _with("training", "lr_schedule", {"kind": "constant", "x": 1}), "lr_schedule.x"),
    ("schedule-list", _with("training", "lr_schedule", [1, 2]), "training.lr_schedule"),
    ("milestones-str", _with("training", "lr_schedule", {"kind": "multistep", "milestones": ["a"], "gamma": 0.5}), "milestones[0]"),
    ("bomb-in-schedule", _bomb("training: {lr_schedule: {kind: multistep, gamma: 0.5, milestones: BOMB}}"), "milestones"),
    ("bomb-as-schedule", _bomb("training: {lr_schedule: BOMB}"), "training.lr_schedule"),
    ("bomb-in-tiers", _bomb("clients: {tiers: BOMB}"), "clients.tiers"),
    ("bomb-in-choice", _bomb("semantics: BOMB"), "semantics"),
    ("bomb-unknown-key", _bomb("bomb: BOMB"), "bomb: unknown key"),
    ("model-name", _with("model", "name", "resnet9000"), "model.name"),
    ("model-name-list", _with("model", "name", ["leaf_cnn"]), "model.name"),
    ("device", _with("run", "device", "gpu0"), "run.device"),
    ("device-int", _with("run", "device", 0), "run.device"),
    ("time-points-str", _with("restoration", "time_points", ["a"]), "restoration.time_points[0]"),
    ("time-points-inf", _with("restoration", "time_points", [float("inf")]), "restoration.time_points[0]"),
    ("time-points-big", _with("restoration", "time_points", [2.0]), "restoration.time_points[0]"),
    ("time-points-empty", _with("restoration", "time_points", []), "restoration.time_points"),
    ("time-ladder-nan", _with("restoration", "time_ladder", [float("nan")] * 5), "restoration.time_ladder[0]"),
    ("tiers-nan", _with("clients", "tiers", [1.0, float("nan"), 0.2, 0.1, 0.05]), "clients.tiers[1]"),
    ("tiers-short", _with("clients", "tiers", [1.0]), "clients.tiers"),
    ("compute-nan", _with("network", "compute_time", float("nan")), "network.compute_time"),
    ("max-time-inf", _with("schedule", "max_time", float("inf")), "schedule.max_time"),
    ("huge-int-for-float", _with("training", "lr", 10**400), "training.lr"),
    ("bool-for-int", _with("schedule", "max_rounds", True), "schedule.max_rounds"),
    ("seed-huge", "seed: " + "9" * 400 + "\n", "seed"),
    ("root-nul", _with("dataset", "root", "a\0b"), "dataset.root"),
    ("section-list", "dataset: [1, 2]\n", "dataset: expected a mapping"),
    ("run-scalar", "run: 3\n", "run"),
    ("int-key", "1: 2\n", "1: unknown key"),
    ("duplicate-key", "seed: 1\nseed: 2\n", "duplicate key"),
    ("duplicate-nested", "training:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key"),
    ("top-list", "- method\n- fedgmr\n", "expected a mapping"),
    ("top-scalar", "42\n", "expected a mapping"),
    ("bad-yaml", "method: [fedgmr\n", "not valid YAML"),
    ("non-utf8", b"method: fedgmr\nseed: \xff\xfe\n", "not UTF-8"),
    ("deep-flow", "a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("deep-block", "a:\n" + "".join(" " * (i + 1) + "b:\n" for i in range(3000)), "nested too deeply"),
    ("choice-list", _with("clients", "heterogeneity", ["high"]), "clients.heterogeneity"),
    ("partition-file-missing", _with("dataset", "partition_file", "/nonexistent/partition"), "partition.json is missing"),
]
# Found only when the run loads its data; `resolve` (the workflow's DAG-time check) accepts them.
RUN_ONLY = {"partition-file-missing"}


def _one_line(capsys, expected):
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and expected in err[0], err[0]
    assert len(err[0]) < 500, err[0]  # nothing expanded (alias bombs, huge values)
    return err[0]


@pytest.mark.parametrize("case, text, expected", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(tmp_path, capsys, case, text, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 2
    _one_line(capsys, expected)
    assert time.perf_counter() - t0 < 20
    assert not out.exists()
    if case in RUN_ONLY:
        return
    # `resolve` reads the same file the same way.
    assert main(["resolve", str(cfg)]) == 2
    _one_line(capsys, expected)


def _file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine\n")
    return f


# (id, function tmp_path -> extra argv, expected text)
ARG_CASES = [
    ("set-bad-yaml", lambda t: ["--set", "training.lr=[1,"], "--set training.lr"),
    ("set-no-equals", lambda t: ["--set", "training.lr"], "--set training.lr"),
    ("set-empty-part", lambda t: ["--set", "training..lr=1"], "--set"),
    ("set-duplicate", lambda t: ["--set", "training={lr: 1, lr: 2}"], "duplicate key"),
    ("set-through-value", lambda t: ["--set", "method.x=1"], "method is not a section"),
    ("set-nan", lambda t: ["--set", "training.momentum=.nan"], "training.momentum"),
    ("set-deep", lambda t: ["--set", "a=" + "[" * 5000], "--set a"),
    ("threads-zero", lambda t: ["--threads", "0"], "run.threads"),
    ("threads-negative", lambda t: ["--threads", "-2"], "run.threads"),
    ("device", lambda t: ["--device", "tpu"], "run.device"),
    ("out-is-file", lambda t: ["--out", str(_file(t))], "--out"),
    ("out-under-file", lambda t: ["--out", str(_file(t) / "sub")], "--out"),
    ("checkpoint-dir-is-file", lambda t: ["--checkpoint-dir", str(_file(t))], "--checkpoint-dir"),
    ("checkpoint-dir-under-file", lambda t: ["--checkpoint-dir", str(_file(t) / "k")], "--checkpoint-dir"),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in ARG_CASES], ids=[c[0] for c in ARG_CASES])
def test_bad_arguments(tmp_path, capsys, argv, expected):
    extra = argv(tmp_path)
    args = ["run", str(TINY), "--no-progress", *extra]
    if "--out" not in extra:
        args += ["--out", str(tmp_path / "out")]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(args) == 2
    _one_line(capsys, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created
    if (tmp_path / "afile").exists():
        assert (tmp_path / "afile").read_text() == "mine\n"


def test_unreadable_config(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 1\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # root reads anything: simulate the denial
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 2
    _one_line(capsys, "cannot read")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "sets, expected",
    [
        (["clients.num=5000"], "clients.num"),  # more clients than samples
        (["clients.num=1000", "dataset.synthetic_train=1000"], "received no training data"),  # Dirichlet shards
        (["dataset.partition_file=PART"], "does not match the sha256"),  # a damaged partition file
    ],
)
def test_partition_errors(tmp_path, capsys, sets, expected):
    part = tmp_path / "part"
    part.mkdir()
    (part / "partition.json").write_text('{"npz_sha256": "0", "scheme": "iid"}')
    (part / "partition.npz").write_bytes(b"garbage")
    args = [x for s in sets for x in ("--set", s.replace("PART", str(part)))]
    assert main(["run", str(TINY), "--out", str(tmp_path / "out"), "--no-progress", *args]) == 2
    _one_line(capsys, expected)
    assert not (tmp_path / "out").exists()


def test_second_run_on_one_out_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with run_lock(out):
        assert main(["run", str(TINY), "--out", str(out), "--no-progress"]) == 2
        _one_line(capsys, "in use by another")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # untouched, and the lock file is gone


def test_a_dead_holder_does_not_block(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("12345\n")  # left by a killed run: the kernel dropped its lock
    with run_lock(out):
        pass
    assert not (out / LOCK_NAME).exists()


# ---- a few cases through the real entry point ------------------------------------------------------------


def _fedgmr(*args):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "fedgmr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_subprocess_bad_set_and_non_utf8(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    for args in (["--set", "training.lr=[1,"], []):
        cfg = str(TINY) if args else str(bad)
        proc = _fedgmr("run", cfg, "--out", str(tmp_path / "out"), *args)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_concurrent_runs_one_refused(tmp_path):
    out = tmp_path / "out"
    first = _fedgmr("run", str(TINY), "--out", str(out), "--no-progress", "--set", "schedule.max_rounds=30")
    deadline = time.time() + 120
    while not (out / LOCK_NAME).exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.02)
    second = _fedgmr("run", str(TINY), "--out", str(out), "--no-progress", "--set", "schedule.max_rounds=30")
    _, err2 = second.communicate(timeout=600)
    _, err1 = first.communicate(timeout=900)
    assert first.returncode == 0, err1
    assert second.returncode == 2 and "in use by another" in err2 and len(err2.strip().splitlines()) == 1
    assert (out / "metrics.csv").is_file() and not (out / LOCK_NAME).exists()


def test_finished_run_on_other_data_is_not_taken_as_done(tmp_path, capsys):
    import json

    from fedgmr.config import load_raw, resolve_config, run_id

    out = tmp_path / "out"
    out.mkdir()
    cfg = resolve_config(load_raw(TINY))
    info = {"status": "complete", "run_id": run_id(cfg), "data_sha256": "0" * 64}
    (out / "run.json").write_text(json.dumps(info))
    (out / "metrics.csv").write_text("tick\n")
    assert main(["run", str(TINY), "--out", str(out), "--no-progress"]) == 2
    assert "other prepared data" in _one_line(capsys, "--out")
    assert json.loads((out / "run.json").read_text()) == info  # left as it was
