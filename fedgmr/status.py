"""``python -m fedgmr status RESULTS``: what every run of a results folder is doing.

A run is one of
- ``done``: ``runs/<id>/run.json`` says complete;
- ``failed``: ``run.json`` records an engine error (``tolerate_failed_runs``), or the run started and no
  process holds it any more (killed: OOM killer, time limit, Ctrl-C; the next invocation resumes it);
- ``running``: a live ``fedgmr run`` holds the run's lock (``runs/<id>/.fedgmr-run.lock``);
- ``not started``: planned by the workflow (``<results>/plan.csv``) with no trace yet.

Everything is read from files the engine writes atomically (``metrics.csv`` at every checkpoint), so the
listing is safe while a grid runs. The latest accuracy and virtual time come from the last checkpoint.
Nothing here imports torch: it answers in well under a second.
"""

from __future__ import annotations

import argparse
import csv
import errno
import fcntl
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

try:  # the engine's run lock (one `fedgmr run` per output folder)
    from fedgmr.runlock import LOCK_NAME
except ImportError:  # pragma: no cover - older engine without the lock
    LOCK_NAME = ".fedgmr-run.lock"

PLAN = "plan.csv"
STATES = ("done", "running", "failed", "not started")


@dataclass
class RunStatus:
    run_id: str
    state: str
    label: str = ""
    acc: float | None = None
    virtual_time: float | None = None
    detail: str = ""


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_metrics(path: Path) -> dict | None:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    return rows[-1] if rows else None


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _pid_alive(pid: int) -> bool | None:
    """True/False on this host; None when it cannot be told (no such permission)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def lock_held(lock: Path) -> bool:
    """Whether a live process holds the run lock ``lock``.

    The lock file holds its owner's pid: a live local pid answers without touching the lock. Otherwise
    (the owner may run on another node of a cluster) probe with a shared, non-blocking flock, released at
    once; a run that starts in that instant is refused and retried by the workflow.
    """
    if not lock.exists():
        return False
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    if pid is not None and pid != os.getpid() and _pid_alive(pid):
        return True
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


def label_of(config: dict | None) -> str:
    """method-dataset-split-level-seed of a run config (raw or resolved)."""
    if not config:
        return ""
    ds = config.get("dataset") or {}
    parts = (
        config.get("method"),
        ds.get("name"),
        ds.get("partition"),
        (config.get("clients") or {}).get("heterogeneity"),
        None if config.get("seed") is None else f"s{config['seed']}",
    )
    return "-".join(str(p) for p in parts if p is not None)


def run_status(results: Path, run_id: str, label: str = "") -> RunStatus:
    """The state of one run of the results folder ``results``."""
    run_dir = results / "runs" / run_id
    info = _read_json(run_dir / "run.json")
    config = _read_json(run_dir / "config.json") or _read_json(results / "configs" / f"{run_id}.json")
    label = label or label_of(config)
    last = _last_metrics(run_dir / "metrics.csv")
    status = RunStatus(run_id, "not started", label)
    if last:
        status.acc, status.virtual_time = _float(last.get("acc")), _float(last.get("virtual_time"))
    if info and info.get("status") == "complete":
        status.state = "done"
        if status.virtual_time is None:
            status.virtual_time = _float(info.get("virtual_time"))
    elif info and info.get("status") == "failed":
        status.state, status.detail = "failed", str(info.get("error", ""))[:200]
    elif lock_held(run_dir / LOCK_NAME):
        status.state = "running"
    else:
        traces = [
            run_dir / "metrics.csv",
            run_dir / LOCK_NAME,
            results / "configs" / f"{run_id}.json",
            results / "logs" / "train" / f"{run_id}.log",
        ]
        checkpoints = results / "checkpoints" / run_id
        if any(p.exists() for p in traces) or (checkpoints.is_dir() and any(checkpoints.iterdir())):
            status.state = "failed"
            status.detail = "stopped (killed or interrupted); the next invocation resumes it"
    return status


def _planned(results: Path) -> dict[str, str]:
    """run id -> label from the workflow's plan (``<results>/plan.csv``), if there is one."""
    try:
        with open(results / PLAN, newline="") as fh:
            return {row["run_id"]: row.get("label", "") for row in csv.DictReader(fh) if row.get("run_id")}
    except (OSError, KeyError):
        return {}


def collect_status(results: Path) -> list[RunStatus]:
    """Every run the results folder knows of: planned, started or finished."""
    results = Path(results)
    ids = dict(_planned(results))
    for folder, pattern in ((results / "runs", "*"), (results / "configs", "*.json")):
        if folder.is_dir():
            for path in folder.glob(pattern):
                if path.name.startswith("."):
                    continue
                rid = path.stem if path.suffix == ".json" else path.name
                if path.is_dir() or path.suffix == ".json":
                    ids.setdefault(rid, "")
    return [run_status(results, rid, label) for rid, label in sorted(ids.items())]


def format_table(rows: list[RunStatus]) -> str:
    lines = [f"{'run_id':<14}{'state':<13}{'acc':>8}{'time':>12}  label"]
    for r in rows:
        acc = "" if r.acc is None else f"{r.acc:.4f}"
        vt = "" if r.virtual_time is None else f"{r.virtual_time:.0f}s"
        extra = f"  ({r.detail})" if r.detail else ""
        lines.append(f"{r.run_id:<14}{r.state:<13}{acc:>8}{vt:>12}  {r.label}{extra}")
    counts = {s: sum(r.state == s for r in rows) for s in STATES}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({len(rows)} runs)")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``status`` on the CLI's sub-command parser."""
    p = sub.add_parser(
        "status",
        help="list the runs of a results folder: done, running, failed, not started",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("results", help="results folder (the workflow's `results`, e.g. results/demo)")
    p.add_argument("--state", choices=STATES, action="append", help="show only runs in this state")


def command(args: argparse.Namespace) -> int:
    """Print the table; exit 2 if the folder does not exist."""
    results = Path(args.results)
    if not results.is_dir():
        print(f"error: {results}: no such results folder", file=sys.stderr)
        return 2
    rows = collect_status(results)
    if args.state:
        rows = [r for r in rows if r.state in args.state]
    print(format_table(rows))
    return 0
