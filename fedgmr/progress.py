"""Plain log lines of a run: one per checkpoint while it runs, one summary when it ends.

A progress bar is useless in a batch log (``logs/train/<run_id>.log``, a SLURM job's output): without it,
``fedgmr run`` logs one INFO line per checkpoint (tick, round, virtual time, accuracy, density); with or
without it, one closing line (final accuracy, virtual time, wall time, output folder).

The logger ``fedgmr.progress`` is set to INFO unless the caller configured it, so these lines appear even
when the rest of the library logs only warnings (the CLI's default); records go to the root handlers.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)
if log.level == logging.NOTSET:
    log.setLevel(logging.INFO)


def checkpoint_line(row: dict) -> str:
    """One checkpoint as text: ``tick 12 round 24 t=380.5s acc=0.7012 density=0.412``."""
    return (
        f"tick {row['tick']} round {row['round']} t={float(row['virtual_time']):.1f}s "
        f"acc={float(row['acc']):.4f} density={float(row['avg_density']):.3f}"
    )


def summary_line(metrics: list[dict], wall_s: float, out: Path, status: str = "complete") -> str:
    """The closing line: final accuracy, virtual time, wall time, output folder."""
    if metrics:
        last = metrics[-1]
        result = f"final acc={float(last['acc']):.4f} t={float(last['virtual_time']):.1f}s"
    else:
        result = "no evaluation"
    return f"run {status}: {result} wall={wall_s:.1f}s out={out}"


def log_checkpoint(row: dict, progress_bar: bool) -> None:
    """Log a checkpoint, unless a progress bar already shows it."""
    if not progress_bar:
        log.info(checkpoint_line(row))


def log_summary(metrics: list[dict], wall_s: float, out: Path, status: str = "complete") -> None:
    """Log the closing line (always, bar or not)."""
    log.info(summary_line(metrics, wall_s, out, status))


def log_existing_summary(out: Path) -> None:
    """The closing line of a run that was already complete (read back from its result files)."""
    import csv
    import json

    out = Path(out)
    try:
        with open(out / "metrics.csv", newline="") as fh:
            metrics = list(csv.DictReader(fh))
        wall = float(json.loads((out / "run.json").read_text()).get("wall_time_s") or 0.0)
    except (OSError, ValueError):
        return
    log.info(summary_line(metrics, wall, out, status="already complete"))
