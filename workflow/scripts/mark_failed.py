"""Decide what a failed engine run leaves behind: a recorded failure, or nothing (so a rerun retries it).

Called by the `train` rule with the engine's exit status after it exited non-zero:
- exit 1 or 2 is an engine error (a traceback, or a refused config), the same on every retry. Unless
  ``--strict`` (config `tolerate_failed_runs: false`) it is recorded so that the tables and the report
  can go on: run.json with status "failed" and the last line of the log, an empty metrics.csv and
  clients.csv, the raw config as config.json; `collect` lists the run's cells as not run, with the error.
  With ``--strict`` the job fails.
- any other status is a kill (128 + signal: 137 = SIGKILL, e.g. the OOM killer; 143 = SIGTERM, e.g. a time
  limit; 130 = Ctrl-C). Nothing is recorded and the job fails, so the next `snakemake` resumes the run from
  its checkpoint instead of reporting "Nothing to be done" forever. (After a kill of Snakemake itself, the
  next invocation may first need `snakemake --unlock`.)
Exits 0 when the failure was recorded, else with the engine's status.

Usage: python workflow/scripts/mark_failed.py [--exit-status N] [--strict] --out RUN_DIR --log LOG
       --config CONFIG_JSON
"""

import argparse
import json
import signal
import sys
from pathlib import Path

# Exit statuses of the engine that mean "this config fails": an exception (1) or a refused input (2).
ENGINE_ERRORS = frozenset({1, 2})


def describe(status: int) -> str:
    if status > 128:
        try:
            return f"killed by {signal.Signals(status - 128).name}"
        except ValueError:
            pass
    return f"exit status {status}"


def record_failure(out: Path, log: Path, config: Path) -> str:
    lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()] if log.is_file() else []
    error = lines[-1] if lines else "engine exited with an error and no log"
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"status": "failed", "error": error[:500]}, indent=2))
    (out / "metrics.csv").write_text("")
    (out / "clients.csv").write_text("")
    (out / "config.json").write_text(config.read_text())
    return error


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exit-status", type=int, default=1, help="the engine's exit status (default 1)")
    p.add_argument("--strict", action="store_true", help="fail on engine errors instead of recording them")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--log", required=True, type=Path)
    p.add_argument("--config", required=True, type=Path)
    a = p.parse_args(argv)
    status = a.exit_status or 1
    if status not in ENGINE_ERRORS:
        print(
            f"run {describe(status)}: not recorded as failed; the next snakemake invocation resumes it from its "
            "checkpoint (run `snakemake --unlock` first if Snakemake itself was killed)",
            file=sys.stderr,
        )
        return status
    if a.strict:
        return status
    error = record_failure(a.out, a.log, a.config)
    print(f"run failed, recorded in {a.out}/run.json: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
