"""Engine overhead: wall time of a FedGMR run against the bare compute it performs.

A FEMNIST-shaped workload on synthetic data (LEAF CNN, 10 clients x K=5 steps at batch 20 per round,
evaluation every 25 rounds) runs through the full engine. The *compute floor* is a bare loop doing the
same local SGD steps (same model, same batch shapes, same count) and the same number of evaluation
forward passes, with none of the machinery (clock, masks, aggregation, checkpoints). Both run in this
process, one after the other, on the same threads.

    python benchmarks/engine.py [--rounds 50] [--threads 2] [--width 1.0]

The last line is ``wall/floor <ratio>``. Peak memory (max RSS) is printed too.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedgmr.config import resolve_config  # noqa: E402
from fedgmr.models import build_model  # noqa: E402
from fedgmr.runner import run  # noqa: E402
from fedgmr.training import loss_fn  # noqa: E402


def config(rounds: int, width: float, batch: bool = True) -> dict:
    return resolve_config(
        {
            "method": "fedgmr",
            "dataset": {
                "name": "synthetic_image",
                "partition": "iid",
                "synthetic_train": 6000,
                "synthetic_test": 1000,
            },
            "model": {"width": width},
            "training": {"local_steps": 5, "batch_size": 20},
            "schedule": {"interval": 25, "max_rounds": rounds},
            "run": {"progress": False, "batch_clients": batch},
        }
    )


def floor(steps: int, eval_passes: int, eval_samples: int, width: float, classes: int) -> float:
    """The same number of SGD steps and evaluation forwards, in a bare loop."""
    model = build_model("leaf_cnn", num_classes=classes, width=width)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(20, 1, 28, 28)
    y = torch.randint(0, classes, (20,))
    xe = torch.rand(min(eval_samples, 500), 1, 28, 28)
    t0 = time.perf_counter()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn("bce_onehot", model(x), y).backward()
        opt.step()
    model.eval()
    with torch.inference_mode():
        for _ in range(eval_passes):
            for s in range(0, eval_samples, 500):
                model(xe[: min(500, eval_samples - s)])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument(
        "--sequential", action="store_true", help="train clients one after another (run.batch_clients: false)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config(args.rounds, args.width, batch=not args.sequential)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sim = run(cfg, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
    c = sim.counters
    rps = sim.net.train_number[0] / wall
    print(
        f"rounds {sim.net.train_number[0]}  local steps {c['steps']}  evaluations {c['eval_passes']} "
        f"({c['eval_samples']} samples)  ticks {sim.tick_index}"
    )
    print(f"engine wall {wall:.2f} s  ({rps:.3f} rounds/s)")
    per_pass = c["eval_samples"] // max(1, c["eval_passes"])
    fl = floor(c["steps"], c["eval_passes"], per_pass, args.width, sim.data.num_classes)
    print(f"compute floor {fl:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MiB")
    print(f"wall/floor {wall / fl:.3f}")


if __name__ == "__main__":
    main()
