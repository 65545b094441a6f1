"""Every base method against its own compute floor: `benchmarks/engine.py --method NAME` per method, each in a
fresh process (so peak memory is the method's), collected into one CSV.

    python benchmarks/methods.py [--rounds 20] [--threads 2] [--repeat 1] [--backends auto[,threads,vmap]]
                                 [--out benchmarks/results/engine_methods_cpu.csv]

Rows: method, backend, rounds, wall (s), floor (s), wall/floor (with ``--repeat``: the median of the paired
ratios, listed in ``ratios``, with their range), peak memory (MiB), plus the machine, command and git
commit. With several ``--backends`` each method runs once per backend, back to back. The floor of each
method is the same local SGD steps on the models it really trains (sub-models for the width-sliced
methods) in a bare loop, interleaved with the run by default; see benchmarks/engine.py. The issue-9 target
is wall/floor <= 1.15.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_METHODS = ["fedgmr", "fedavg", "fedasync", "heterofl", "fedrolex", "fjord", "fiarse"]
PATTERNS = {
    "backend": r"backend (\w+)",
    "rounds": r"rounds (\d+)",
    "wall_s": r"engine wall ([\d.]+) s",
    "floor_s": r"compute floor ([\d.]+) s",
    "peak_mib": r"peak memory (\d+) MiB",
    "wall_over_floor": r"^wall/floor ([\d.]+)$",  # the last line (not the "paired wall/floor" one)
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_short() -> str:
    """The checkout's short commit (the code a row measured)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=HERE).stdout.strip()


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` as a CSV pandas reads directly (header from the first row)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}")


def measure(method: str, rounds: int, threads: int, extra: list[str]) -> dict:
    cmd = [sys.executable, str(HERE / "engine.py"), "--method", method, "--rounds", str(rounds),
           "--threads", str(threads), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {"method": method} | parse_engine(out, cmd)


def parse_engine(out: str, cmd: list[str]) -> dict:
    """The figures of one ``engine.py`` output (``PATTERNS``), and with ``--repeat`` every paired ratio
    (the row's ratio is their median) and their range."""
    row = {}
    for key, pattern in PATTERNS.items():
        m = re.search(pattern, out, re.MULTILINE)
        if m is None:
            raise RuntimeError(f"no {key!r} in the output of {' '.join(cmd)}:\n{out}")
        row[key] = m.group(1)
    m = re.search(r"^paired wall/floor ([\d. ]+) \(", out, re.MULTILINE)
    ratios = m.group(1).split() if m else [row["wall_over_floor"]]
    row["ratios"] = " ".join(ratios)
    row["ratio_min"], row["ratio_max"] = min(ratios, key=float), max(ratios, key=float)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", default=BASE_METHODS)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sequential", action="store_true", help="pass --sequential to engine.py")
    ap.add_argument("--floor", default="interleaved", choices=("interleaved", "after"), help="pass --floor to engine.py")
    ap.add_argument("--repeat", type=int, default=1, help="pass --repeat to engine.py (median of N paired ratios)")
    ap.add_argument("--backends", default="auto", help="comma-separated run.batch_backend values to compare")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "engine_methods_cpu.csv")
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    extra = (["--sequential"] if a.sequential else []) + (["--repeat", str(a.repeat)] if a.repeat > 1 else [])
    extra += ["--floor", a.floor] if a.floor != "interleaved" else []
    sha = git_short()
    machine = f"{os.cpu_count()} cores, {cpu_model()}"
    backends = [b for b in a.backends.split(",") if b]
    unknown = sorted(set(backends) - {"auto", "threads", "vmap"})
    if not backends or unknown:
        ap.error(f"--backends takes a comma-separated list of auto, threads, vmap (got {a.backends!r})")
    chosen = ["--methods", *a.methods] if a.methods != BASE_METHODS else []
    command = " ".join(["python", "benchmarks/methods.py", *chosen, "--rounds", str(a.rounds), "--threads",
                        str(a.threads), *extra, *(["--backends", a.backends] if backends != ["auto"] else [])])
    rows = []
    for method, backend in ((m, b) for m in a.methods for b in backends):
        row = measure(method, a.rounds, a.threads, [*extra, "--backend", backend])
        row.update(date=time.strftime("%Y-%m-%d"), machine=machine, git=sha, command=command,
                   load_1min_after=f"{os.getloadavg()[0]:.2f}")
        rows.append(row)
        print(f"{method:10s} {row['backend']:10s} wall {row['wall_s']:>7} s  floor {row['floor_s']:>7} s  "
              f"wall/floor {row['wall_over_floor']}  peak {row['peak_mib']} MiB", flush=True)
    write_csv(a.out, rows)


if __name__ == "__main__":
    main()
