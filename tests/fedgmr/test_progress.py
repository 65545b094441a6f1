"""Log lines of `fedgmr run`: one per checkpoint without the progress bar, a closing line in every case."""

import os
import re
import subprocess
import sys
from pathlib import Path

from fedgmr.progress import checkpoint_line, summary_line

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "config" / "examples" / "tiny.yaml"
CHECKPOINT = re.compile(r"^INFO fedgmr\.progress: tick (\d+) round (\d+) t=[\d.]+s acc=[\d.]+ density=[\d.]+$")
SUMMARY = re.compile(r"^INFO fedgmr\.progress: run (complete|already complete): final acc=([\d.]+) t=([\d.]+)s "
                     r"wall=[\d.]+s out=(.+)$")


def _run(out: Path, *extra: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "fedgmr", "run", str(TINY), "--out", str(out), "--threads", "1",
         "--set", "schedule.max_rounds=40", *extra],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr.splitlines()


def test_lines_formats():
    row = {"tick": 3, "round": 15, "virtual_time": 141.06, "acc": 0.295, "avg_density": 0.33}
    assert checkpoint_line(row) == "tick 3 round 15 t=141.1s acc=0.2950 density=0.330"
    assert summary_line([row], 6.54, Path("o")) == "run complete: final acc=0.2950 t=141.1s wall=6.5s out=o"
    assert summary_line([], 1.0, Path("o")) == "run complete: no evaluation wall=1.0s out=o"


def test_checkpoint_lines_without_bar_and_summary_always(tmp_path):
    out = tmp_path / "run"
    lines = _run(out, "--no-progress")
    ticks = [int(m.group(1)) for m in map(CHECKPOINT.match, lines) if m]
    # tiny.yaml: an evaluation every 5 rounds (8 ticks in 40 rounds), a checkpoint every 4 ticks.
    assert ticks == [3, 7], lines
    summaries = [m for m in map(SUMMARY.match, lines) if m]
    assert len(summaries) == 1 and summaries[0].group(1) == "complete"
    final = (out / "metrics.csv").read_text().splitlines()[-1].split(",")
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert float(summaries[0].group(2)) == round(float(final[header.index("acc")]), 4)
    assert summaries[0].group(4) == str(out)
    # Rerun of a complete run: nothing to do, but still a closing line.
    again = [m for m in map(SUMMARY.match, _run(out, "--no-progress")) if m]
    assert len(again) == 1 and again[0].group(1) == "already complete"
    assert again[0].group(2) == summaries[0].group(2)


def test_bar_on_still_closes_with_summary(tmp_path):
    lines = _run(tmp_path / "run")
    assert not any(CHECKPOINT.match(x) for x in lines)  # the bar shows progress: no duplicate lines
    assert sum(bool(SUMMARY.match(x.split("\r")[-1])) for x in lines) == 1, lines
