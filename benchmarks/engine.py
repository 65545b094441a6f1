"""Engine overhead: wall time of a run against the bare compute it performs.

A FEMNIST-shaped workload on synthetic data (LEAF CNN, 10 clients x K=5 steps at batch 20 per round,
evaluation every 25 rounds) runs through the full engine, by default with FedGMR. The *compute floor* is
a bare loop doing the same local SGD steps (same batch shapes, same count, same optimiser settings) on
models of the size the method really trains -- the full model for the masked methods (FedGMR family,
FedAvg, FedAsync, FIARSE), each sub-model for the width-sliced ones (HeteroFL, FedRolex, FjORD), counted
per density by the engine -- and the same number of evaluation forward passes on the full model, with
none of the machinery (clock, masks, aggregation, checkpoints). Both run in this process, on the same
threads: by default (``--floor interleaved``) each engine iteration is followed at once by the floor of
the work it did (its local steps and evaluations), so the two see the machine in the same state, and the
engine's wall is the run's minus those slices; ``--floor after`` runs the whole floor after the whole run
(this script's only schedule until commit a27090f).

    python benchmarks/engine.py [--method fedgmr] [--rounds 50] [--threads 2] [--width 1.0] [--repeat 1]
                                [--sequential | --backend auto|threads|vmap] [--semantics released|clean]
                                [--floor interleaved|after]

The last line is ``wall/floor <ratio>``. Peak memory (max RSS) is printed too; with the interleaved floor
it includes the floor's own models (one per model density trained and one for evaluation, with their
gradients), so the engine's own peak is that of ``--floor after``. On this shared machine the same work can take 20-70 %
more or less from one minute to the next (a 20-round FedAvg floor took 14 s and 24 s on one day), which
swamped the ratio when engine and floor ran a minute apart: with ``--floor after`` three repeats of
20-round runs gave paired ratios as far apart as 0.89-1.28. ``--repeat N`` runs engine and floor N
times and reports the median of the N paired ratios with their range (walls and floors: medians;
until commit 0a22cba the fastest engine run against the fastest floor run).
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedgmr.config import resolve_config  # noqa: E402
from fedgmr.models import build_model  # noqa: E402
from fedgmr.models.slicing import build_submodel  # noqa: E402
from fedgmr.runner import run  # noqa: E402
from fedgmr.simulation import Simulation  # noqa: E402
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


class Floor:
    """The bare loop: local SGD steps per model density and evaluation forwards on the full model, with
    none of the engine's machinery; runnable in slices (:meth:`run`), its own seconds in ``seconds``."""

    def __init__(self, cfg: dict, classes: int):
        self.cfg, self.classes, self.tr = cfg, classes, cfg["training"]
        with torch.random.fork_rng(devices=[]):  # inside a run (interleaved): leave the run's RNG alone
            self.x = torch.rand(self.tr["batch_size"], 1, 28, 28)
            self.y = torch.randint(0, classes, (self.tr["batch_size"],))
            self.xe = torch.rand(500, 1, 28, 28)
        self.models: dict[float, tuple] = {}  # density -> (model, optimiser), built on first use
        self.full: torch.nn.Module | None = None
        self.seconds = 0.0
        self.steps: Counter[float] = Counter()  # work done (for tests): steps by density, forwards
        self.passes = self.samples = 0

    def _trained(self, density: float) -> tuple:
        if density not in self.models:
            model = _model(self.cfg, self.classes, density)
            tr = self.tr
            opt = torch.optim.SGD(
                model.parameters(), lr=tr["lr"], momentum=tr["momentum"], weight_decay=tr["weight_decay"]
            )
            self.models[density] = (model.train(), opt)
        return self.models[density]

    def run(self, steps_by_density: dict, passes: int = 0, samples: int = 0) -> None:
        """The steps (``{density: count}``) and ``passes`` forwards over ``samples`` in all, timed. Torch's
        global random state is the same afterwards (model initialisation and dropout draw from it)."""
        with torch.random.fork_rng(devices=[]):
            self._run(steps_by_density, passes, samples)

    def _run(self, steps_by_density: dict, passes: int, samples: int) -> None:
        # Models are built before the clock starts: the engine builds its own once per run, too.
        trained = {d: self._trained(d) for d, n in steps_by_density.items() if n}
        if passes and self.full is None:
            self.full = _model(self.cfg, self.classes, 1.0).eval()
        per_pass = samples // max(1, passes)
        t0 = time.perf_counter()
        for density, (model, opt) in trained.items():
            for _ in range(steps_by_density[density]):
                opt.zero_grad()
                loss_fn(self.tr["loss"], model(self.x), self.y).backward()
                opt.step()
        if passes:
            with torch.inference_mode():
                for _ in range(passes):
                    for s in range(0, per_pass, 500):
                        self.full(self.xe[: min(500, per_pass - s)])
        self.seconds += time.perf_counter() - t0
        self.steps.update(steps_by_density)
        self.passes += passes
        self.samples += per_pass * passes


def floor(cfg: dict, counters: dict, classes: int) -> float:
    """The same SGD steps (per model density) and evaluation forwards as a whole run, in a bare loop."""
    f = Floor(cfg, classes)
    f.run(counters["steps_by_density"], counters["eval_passes"], counters["eval_samples"])
    return f.seconds


class Interleaved:
    """The floor of every engine iteration (``Simulation.step``) run right after it, in the same process
    and the same minute, while the context is active. ``floor`` is the floor's compute; ``excluded``
    every second the benchmark itself spent inside the run (work counters, the floor, its model
    builds), to be taken off the run's wall."""

    def __init__(self) -> None:
        self.floor: Floor | None = None
        self.excluded = 0.0

    def __enter__(self) -> Interleaved:
        self._orig = orig = Simulation.step

        def step(sim: Simulation) -> bool:
            t0 = time.perf_counter()
            before = sim.counters
            t1 = time.perf_counter()
            more = orig(sim)
            t2 = time.perf_counter()
            after = sim.counters
            if self.floor is None:
                self.floor = Floor(sim.cfg, sim.data.num_classes)
            done = before["steps_by_density"]
            steps = {d: n - done.get(d, 0) for d, n in after["steps_by_density"].items()}
            passes = after["eval_passes"] - before["eval_passes"]
            self.floor.run(steps, passes, after["eval_samples"] - before["eval_samples"])
            self.excluded += (t1 - t0) + (time.perf_counter() - t2)
            return more

        Simulation.step = step
        return self

    def __exit__(self, *exc) -> None:
        Simulation.step = self._orig


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
        "--repeat",
        type=int,
        default=1,
        help="alternate engine and floor N times; median of the paired ratios",
    )
    ap.add_argument(
        "--floor",
        default="interleaved",
        choices=("interleaved", "after"),
        help="interleaved: each engine iteration's floor runs right after it (default); after: the whole "
        "floor after the whole run",
    )
    ap.add_argument(
        "--semantics",
        default="released",
        choices=("released", "clean"),
        help="the run's semantics (default released)",
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
            if args.floor == "interleaved":
                with Interleaved() as inter:
                    t0 = time.perf_counter()
                    sim = run(cfg, Path(tmp) / "run", progress=False)
                    total = time.perf_counter() - t0
                floors.append(inter.floor.seconds)
                walls.append(total - inter.excluded)
                del inter
            else:
                t0 = time.perf_counter()
                sim = run(cfg, Path(tmp) / "run", progress=False)
                walls.append(time.perf_counter() - t0)
        # The same work in every repetition; only one run's state is alive at a time (peak memory).
        c, rounds, ticks = sim.counters, sim.net.train_number[0], sim.tick_index
        backend = "sequential" if sim.group is None else sim.group.backend
        run_cfg, classes = sim.cfg, sim.data.num_classes
        del sim
        gc.collect()
        if args.floor == "after":
            floors.append(floor(run_cfg, c, classes))
    wall, fl = statistics.median(walls), statistics.median(floors)
    ratios = [w / f for w, f in zip(walls, floors)]
    rps = rounds / wall
    by_density = ", ".join(f"{d:g}: {n}" for d, n in c["steps_by_density"].items())
    print(
        f"method {args.method}  rounds {rounds}  local steps {c['steps']} "
        f"(by density {by_density})  evaluations {c['eval_passes']} ({c['eval_samples']} samples)  "
        f"ticks {ticks}  backend {backend}  semantics {args.semantics}  floor {args.floor}"
    )
    if args.repeat > 1:
        print(f"repeats {args.repeat}: engine {_seconds(walls)}; floor {_seconds(floors)}")
        print(
            "paired wall/floor "
            + " ".join(f"{r:.3f}" for r in ratios)
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
