"""Wall-clock cost of one FedGMR round per paper dataset, at full model size, on the chosen device.

Synthetic data with each dataset's shapes (FEMNIST 1x28x28/62 classes, CIFAR-10 3x32x32/10,
ImageNet-100 3x168x168/100, StackOverflow 128-token sequences over 10,000 words) goes through the real
engine with the paper's per-dataset settings (model, K, batch size, evaluation interval). The script
prints seconds per round and per evaluation tick, and extrapolates one paper run from the reference's
round budget (MAX_ROUND, reference §3.8) - an estimate, since restoration changes the densities and the
evaluation-set sizes differ from the real ones.

Each dataset runs once per ``--modes`` entry: ``sequential`` trains the clients of an iteration one after
another (``run.batch_clients: false``, the path the goldens freeze), ``batched`` trains them together
(``run.batch_clients: true`` with ``run.batch_backend``, by default ``auto``: ``vmap`` on accelerators,
one after another on the CPU). Batched rows carry ``speedup``: sequential seconds per round over batched
(issue 9 asks for >= 5 on FEMNIST and CIFAR-10 at full width).

    python benchmarks/gpu_cost.py --device cuda [--datasets femnist,cifar10] [--rounds 30]
                                  [--modes sequential,batched] [--backend auto] [--out results/gpu_cost.csv]

``benchmarks/device_check.sh`` is the prepared run for a session lent a GPU.
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep import synthetic  # noqa: E402
from fedgmr.config import resolve_config  # noqa: E402
from fedgmr.profiles import PROFILES  # noqa: E402
from fedgmr.simulation import Simulation  # noqa: E402

HERE = Path(__file__).resolve().parent

SHAPES = {  # dataset -> (shape, classes, train, test) of the stand-in data
    "femnist": ((1, 28, 28), 62, 4000, 1000),
    "cifar10": ((3, 32, 32), 10, 4000, 1000),
    "imagenet100": ((3, 168, 168), 100, 2000, 500),
}


def prepare(name: str, root: Path, small: bool) -> Path:
    out = root / name
    out.mkdir(parents=True)
    if name == "stackoverflow":
        data = synthetic.make_text(
            n_train=300 if small else 3000,
            n_test_chunks=100 if small else 1000,
            vocab_size=10_000,
            seq_len=128,
            n_users=60,
            seed=0,
        )
        synthetic.write_text(out, data)
        return out
    shape, classes, n_train, n_test = SHAPES[name]
    if small:
        n_train, n_test = 300, 50
    data = synthetic.make_image(n_train=n_train, n_test=n_test, num_classes=classes, shape=shape, seed=0)
    synthetic.write_image(out, data)
    return out


MODES = {"sequential": False, "batched": True}  # mode -> run.batch_clients


def measure(name: str, root: Path, rounds: int, device: str, width: float, mode: str, backend: str) -> dict:
    prof = PROFILES[name]
    cfg = resolve_config(
        {
            "method": "fedgmr",
            "dataset": {"name": name, "root": str(root), "partition": "iid"},
            "model": {"width": width},
            "schedule": {"max_rounds": rounds, "interval": prof.interval},
            "run": {"progress": False, "device": device, "batch_clients": MODES[mode], "batch_backend": backend},
        }
    )
    sim = Simulation(cfg, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sim.step()  # round 0: dense, builds the masks, first evaluation (warm-up)
    sync()
    t0 = time.perf_counter()
    n = 0
    while sim.step():
        n += 1
    sync()
    per_round = (time.perf_counter() - t0) / max(n, 1)
    t1 = time.perf_counter()
    sim._tick(sim.net.round)  # one evaluation tick alone: 2 evaluations, restoration, masks
    sync()
    per_tick = time.perf_counter() - t1
    run_rounds = prof.max_rounds
    est = run_rounds * per_round + run_rounds / prof.interval * per_tick
    return {
        "dataset": name,
        "mode": mode,
        "backend": sim.group.backend if sim.group is not None else "sequential",
        "device": device,
        "device_name": device_name(device),
        "model": prof.model,
        "width": width,
        "rounds_timed": n,
        "s_per_round": round(per_round, 4),
        "s_per_tick": round(per_tick, 3),
        "paper_rounds": run_rounds,
        "est_hours_per_run": round(est / 3600, 2),
    }


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def add_speedups(rows: list[dict]) -> None:
    """``speedup`` on each batched row: the same dataset's sequential seconds per round over its own."""
    seq = {r["dataset"]: r["s_per_round"] for r in rows if r["mode"] == "sequential"}
    for r in rows:
        base = seq.get(r["dataset"])
        r["speedup"] = round(base / r["s_per_round"], 2) if r["mode"] != "sequential" and base else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--datasets", default="femnist,cifar10,imagenet100,stackoverflow")
    ap.add_argument("--small", action="store_true", help="tiny data (smoke test)")
    ap.add_argument("--modes", default="sequential,batched", help="comma-separated: sequential, batched")
    ap.add_argument("--backend", default="auto", choices=["auto", "threads", "vmap"],
                    help="run.batch_backend of the batched mode")
    ap.add_argument("--out", help="also write the rows as CSV here")
    args = ap.parse_args()
    modes = args.modes.split(",")
    if not modes or set(modes) - set(MODES):
        ap.error(f"--modes takes a comma-separated list of {', '.join(MODES)} (got {args.modes!r})")
    known = [*SHAPES, "stackoverflow"]
    if set(args.datasets.split(",")) - set(known):
        ap.error(f"--datasets takes a comma-separated list of {', '.join(known)} (got {args.datasets!r})")
    stamp = {"date": time.strftime("%Y-%m-%d"), "git": git_commit(), "command": " ".join(["python", *sys.argv])}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            root = prepare(name, Path(tmp), args.small)
            for mode in modes:
                row = measure(name, root, args.rounds, args.device, args.width, mode, args.backend)
                print(row, flush=True)
                rows.append(row)
    add_speedups(rows)
    for row in rows:
        row.update(stamp)
        if row["speedup"] != "":
            print(f"{row['dataset']}: batched ({row['backend']}) {row['s_per_round']} s per round, "
                  f"speedup {row['speedup']} over sequential")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
