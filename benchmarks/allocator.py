"""The engine's memory policy (``fedgmr.allocator``) against the C library's defaults, side by side.

    python benchmarks/allocator.py [--method fedasync] [--rounds 10] [--threads 1] [--repeat 3]
                                   [--out benchmarks/results/allocator_cpu.csv]

Runs ``benchmarks/engine.py`` in fresh processes, alternating with the policy (the default) and with
``FEDGMR_MALLOC=system``, and records per run the engine's wall, the floor (``--floor after``: the whole
floor after the whole run, so no floor model is alive during the run), peak memory and the process's
user and system CPU time and minor page faults (``getrusage`` of the child). One thread by default:
system time and page faults are then the process's own, not spread over idle intra-op threads.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from methods import cpu_model, git_short, parse_engine, write_csv  # noqa: E402

POLICIES = {"engine": {}, "system": {"FEDGMR_MALLOC": "system"}}


def measure(policy: str, method: str, rounds: int, threads: int) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "engine.py"),
        "--method",
        method,
        "--rounds",
        str(rounds),
        "--threads",
        str(threads),
        "--floor",
        "after",  # as measured in results/allocator_cpu.csv: the peak is the engine's, then the floor's
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {k: v for k, v in os.environ.items() if k != "FEDGMR_MALLOC"} | POLICIES[policy]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = parse_engine(out, cmd)
    row = {"policy": policy, "method": method}
    row |= {k: figures[k] for k in ("rounds", "wall_s", "floor_s", "peak_mib", "wall_over_floor")}
    row["user_s"] = f"{after.ru_utime - before.ru_utime:.2f}"
    row["system_s"] = f"{after.ru_stime - before.ru_stime:.2f}"
    row["minor_faults"] = after.ru_minflt - before.ru_minflt
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="fedasync")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "allocator_cpu.csv")
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    sha = git_short()
    command = (
        f"python benchmarks/allocator.py --method {a.method} --rounds {a.rounds} --threads {a.threads} "
        f"--repeat {a.repeat}"
    )
    rows = []
    for _ in range(a.repeat):
        for policy in POLICIES:
            row = measure(policy, a.method, a.rounds, a.threads)
            row.update(
                date=time.strftime("%Y-%m-%d"),
                machine=f"{os.cpu_count()} cores, {cpu_model()}",
                git=sha,
                command=command,
            )
            rows.append(row)
            print(
                " ".join(
                    f"{k} {row[k]}"
                    for k in ("policy", "wall_s", "floor_s", "peak_mib", "user_s", "system_s", "minor_faults")
                ),
                flush=True,
            )
    write_csv(a.out, rows)


if __name__ == "__main__":
    main()
