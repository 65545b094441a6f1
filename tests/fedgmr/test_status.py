"""`python -m fedgmr status RESULTS` on a fixture results folder with one run in each state."""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedgmr.status import LOCK_NAME, collect_status, format_table

REPO = Path(__file__).resolve().parents[2]
HEADER = "tick,round,virtual_time,acc_server,acc_avg,acc,loss_server,avg_density,rho_min,upload_mb,download_mb\n"


def _metrics(run_dir: Path, rows: list[tuple[float, float]]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{i},{2 * i},{t},{a},{a},{a},0.5,0.2,0.05,0,0\n" for i, (t, a) in enumerate(rows))
    (run_dir / "metrics.csv").write_text(HEADER + body)


@pytest.fixture
def results(tmp_path):
    """done, running, failed (recorded), failed (killed) and not started."""
    res = tmp_path / "results"
    runs = res / "runs"
    cfg = {"method": "fedgmr", "seed": 0, "dataset": {"name": "fmnist", "partition": "noniid"},
           "clients": {"heterogeneity": "high"}}
    # done
    _metrics(runs / "aaaaaaaaaaaa", [(10.0, 0.3), (20.0, 0.61)])
    (runs / "aaaaaaaaaaaa" / "run.json").write_text(json.dumps({"status": "complete", "virtual_time": 21.0}))
    (runs / "aaaaaaaaaaaa" / "config.json").write_text(json.dumps(cfg))
    # running: a live process holds the run lock
    _metrics(runs / "bbbbbbbbbbbb", [(10.0, 0.25)])
    lock = runs / "bbbbbbbbbbbb" / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{os.getpid()}\n".encode())
    # failed: an engine error recorded by mark_failed
    (runs / "cccccccccccc").mkdir()
    (runs / "cccccccccccc" / "run.json").write_text(json.dumps({"status": "failed", "error": "ValueError: x"}))
    # failed: killed (checkpointed metrics and a stale lock file, no process)
    _metrics(runs / "dddddddddddd", [(5.0, 0.2), (15.0, 0.4)])
    (runs / "dddddddddddd" / LOCK_NAME).write_text("999999999\n")
    # not started: only in the workflow's plan
    (res / "plan.csv").write_text("run_id,label,experiments\neeeeeeeeeeee,fedavg-fmnist-noniid-high-s0,main\n"
                                  "aaaaaaaaaaaa,fedgmr-fmnist-noniid-high-s0,main\n")
    yield res
    os.close(fd)


def test_one_run_in_each_state(results):
    rows = {r.run_id: r for r in collect_status(results)}
    assert {k: r.state for k, r in rows.items()} == {
        "aaaaaaaaaaaa": "done", "bbbbbbbbbbbb": "running", "cccccccccccc": "failed",
        "dddddddddddd": "failed", "eeeeeeeeeeee": "not started"}
    assert rows["aaaaaaaaaaaa"].acc == pytest.approx(0.61) and rows["aaaaaaaaaaaa"].virtual_time == 20.0
    assert rows["aaaaaaaaaaaa"].label == "fedgmr-fmnist-noniid-high-s0"
    assert rows["bbbbbbbbbbbb"].acc == pytest.approx(0.25)  # latest checkpoint of a running run
    assert rows["cccccccccccc"].detail == "ValueError: x"
    assert "killed" in rows["dddddddddddd"].detail and rows["dddddddddddd"].virtual_time == 15.0
    assert rows["eeeeeeeeeeee"].label == "fedavg-fmnist-noniid-high-s0" and rows["eeeeeeeeeeee"].acc is None
    assert format_table(list(rows.values())).splitlines()[-1] == (
        "1 done, 1 running, 2 failed, 1 not started (5 runs)")


def test_cli(results):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "fedgmr", "status", str(results), "--state", "running"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split()[:3] == ["bbbbbbbbbbbb", "running", "0.2500"]
    assert len(lines) == 3
    missing = subprocess.run([sys.executable, "-m", "fedgmr", "status", str(results / "nope")],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert missing.returncode == 2 and "no such results folder" in missing.stderr
