"""Engine overhead: wall time of a run against the bare compute it performs.

A FEMNIST-shaped workload on synthetic data (LEAF CNN, 10 clients x K=5 steps at batch 20 per round,
evaluation every 25 rounds) runs through the full engine, by default with FedGMR. The *compute floor* is
a bare loop doing the same local SGD steps (same batch shapes, same count, same optimiser settings) on
models of the size the method really trains -- the full model for the masked methods (FedGMR family,
FedAvg, FedAsync, FIARSE), each sub-model for the width-sliced ones (HeteroFL, FedRolex, FjORD), counted
per density by the engine -- and the same number of evaluation forward passes on the full model, with
none of the machinery (clock, masks, aggregation, checkpoints). Both run in this process, one after the
other, on the same threads.

    python benchmarks/engine.py [--method fedgmr] [--rounds 50] [--threads 2] [--width 1.0] [--repeat 1]
                                [--sequential | --backend auto|threads|vmap] [--semantics released|clean]

The last line is ``wall/floor <ratio>``. Peak memory (max RSS) is printed too. On a shared machine the
same work can take 20-40 % more or less from one run to the next, and the machine's speed drifts over
minutes; ``--repeat N`` alternates engine and floor N times, pairs each engine run with the floor run just
after it, and reports the median of the paired ratios with their range (walls and floors: medians). A
pair measured back to back shares the machine's state of the moment, which the fastest engine run and the
fastest floor run (this script's estimator until commit 0a22cba) need not.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedgmr.config import resolve_config  # noqa: E402
from fedgmr.models import build_model  # noqa: E402
from fedgmr.models.slicing import build_submodel  # noqa: E402
from fedgmr.runner import run  # noqa: E402
from fedgmr.training import loss_fn  # noqa: E402


def config(
    rounds: int,
    width: float,
    batch: bool = True,
    method: str = "fedgmr",
    backend: str = "auto",
    semantics: str = "released",
) -> dict:
    return resolve_config(
        {
            "method": method,
            "semantics": semantics,
            "dataset": {
                "name": "synthetic_image",
                "partition": "iid",
                "synthetic_train": 6000,
                "synthetic_test": 1000,
            },
            "model": {"width": width},
            "training": {"local_steps": 5, "batch_size": 20},
            "schedule": {"interval": 25, "max_rounds": rounds},
            "run": {"progress": False, "batch_clients": batch, "batch_backend": backend},
        }
    )


def _model(cfg: dict, classes: int, density: float) -> torch.nn.Module:
    """A fresh model of the run's architecture at ``density`` (1.0: the full model)."""
    m = cfg["model"]
    kwargs = {"num_classes": classes, "width": m["width"], "variant": m["variant"]}
    if m["norm"]:
        kwargs["norm"] = m["norm"]
    if density >= 1.0:
        return build_model(m["name"], **kwargs)
    return build_submodel(m["name"], density, **kwargs)


def floor(cfg: dict, counters: dict, classes: int) -> float:
    """The same SGD steps (per model density) and evaluation forwards, in a bare loop."""
    tr = cfg["training"]
    x = torch.rand(tr["batch_size"], 1, 28, 28)
    y = torch.randint(0, classes, (tr["batch_size"],))
    models = {d: _model(cfg, classes, d) for d in counters["steps_by_density"]}
    full = _model(cfg, classes, 1.0)
    passes, samples = counters["eval_passes"], counters["eval_samples"]
    per_pass = samples // max(1, passes)
    xe = torch.rand(min(per_pass, 500), 1, 28, 28)
    t0 = time.perf_counter()
    for density, steps in counters["steps_by_density"].items():
        model = models[density]
        opt = torch.optim.SGD(
            model.parameters(), lr=tr["lr"], momentum=tr["momentum"], weight_decay=tr["weight_decay"]
        )
        model.train()
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(tr["loss"], model(x), y).backward()
            opt.step()
    full.eval()
    with torch.inference_mode():
        for _ in range(passes):
            for s in range(0, per_pass, 500):
                full(xe[: min(500, per_pass - s)])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="fedgmr", help="registered method (fedgmr, fedavg, heterofl, ...)")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument(
        "--sequential", action="store_true", help="train clients one after another (run.batch_clients: false)"
    )
    ap.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "threads", "vmap"),
        help="run.batch_backend (auto: one client after another on the CPU, vmap on a GPU)",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="alternate engine and floor N times; median of the paired ratios"
    )
    ap.add_argument(
        "--semantics", default="released", choices=("released", "clean"), help="the run's semantics (default released)"
    )
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    torch.set_num_threads(args.threads)
    cfg = config(
        args.rounds,
        args.width,
        batch=not args.sequential,
        method=args.method,
        backend=args.backend,
        semantics=args.semantics,
    )
    walls, floors = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            sim = run(cfg, Path(tmp) / "run", progress=False)
            walls.append(time.perf_counter() - t0)
        # The same work in every repetition; only one run's state is alive at a time (peak memory).
        c, rounds, ticks = sim.counters, sim.net.train_number[0], sim.tick_index
        backend = "sequential" if sim.group is None else sim.group.backend
        run_cfg, classes = sim.cfg, sim.data.num_classes
        del sim
        gc.collect()
        floors.append(floor(run_cfg, c, classes))
    wall, fl = statistics.median(walls), statistics.median(floors)
    ratios = [w / f for w, f in zip(walls, floors)]
    rps = rounds / wall
    by_density = ", ".join(f"{d:g}: {n}" for d, n in c["steps_by_density"].items())
    print(
        f"method {args.method}  rounds {rounds}  local steps {c['steps']} "
        f"(by density {by_density})  evaluations {c['eval_passes']} ({c['eval_samples']} samples)  "
        f"ticks {ticks}  backend {backend}  semantics {args.semantics}"
    )
    if args.repeat > 1:
        print(f"repeats {args.repeat}: engine {_seconds(walls)}; floor {_seconds(floors)}")
        print(
            "paired wall/floor " + " ".join(f"{r:.3f}" for r in ratios)
            + f" (median used; range {min(ratios):.3f}-{max(ratios):.3f})"
        )
    print(f"engine wall {wall:.2f} s  ({rps:.3f} rounds/s)")
    print(f"compute floor {fl:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MiB")
    print(f"wall/floor {statistics.median(ratios):.3f}")


def _seconds(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values) + " s"


if __name__ == "__main__":
    main()
