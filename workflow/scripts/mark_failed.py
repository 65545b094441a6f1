"""Record a failed engine run so the tables and the report can go on (config `tolerate_failed_runs`).

Writes run.json with status "failed" and the last line of the run's log, an empty metrics.csv and
clients.csv, and the raw config as config.json. `collect` lists the run's cells as not run, with the error.
Usage: python workflow/scripts/mark_failed.py --out RUN_DIR --log LOG --config CONFIG_JSON
"""

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--log", required=True, type=Path)
    p.add_argument("--config", required=True, type=Path)
    a = p.parse_args(argv)
    lines = [x.strip() for x in a.log.read_text(errors="replace").splitlines() if x.strip()] if a.log.is_file() else []
    error = lines[-1] if lines else "engine exited with an error and no log"
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "run.json").write_text(json.dumps({"status": "failed", "error": error[:500]}, indent=2))
    (a.out / "metrics.csv").write_text("")
    (a.out / "clients.csv").write_text("")
    (a.out / "config.json").write_text(a.config.read_text())
    print(f"run failed, recorded in {a.out}/run.json: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
