"""Where a run's wall time goes: seconds spent inside chosen engine functions, per call and per round.

One run of `benchmarks/engine.py`'s workload (``--method``, ``--rounds``) with a timer around each named
function (``module:Class.method`` or ``module:function``); a call made from inside another timed call of
the same function is not counted twice. A function is timed where the engine looks it up when it calls
it (a module attribute or a class method); one kept in a table when the module was imported (the
``AGGREGATORS`` rules) is reached through its helpers, such as ``fedgmr.aggregation:merged``.

    python benchmarks/breakdown.py --method fiarse --rounds 10
    python benchmarks/breakdown.py --method fjord --rounds 20 fedgmr.index_map:gather

The timers cost about a microsecond per call; the run's local steps are ``fedgmr.training:Trainer._train``
(or a method's own training, such as FIARSE's ``fedgmr.methods.fiarse_kept:train_kept``), and
``compute floor`` below is the bare loop of the same steps and evaluations (`benchmarks/engine.py`), run
after the run.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import engine  # noqa: E402

from fedgmr.runner import run  # noqa: E402

DEFAULT = [
    "fedgmr.simulation:Simulation.step",
    "fedgmr.training:Trainer._train",
    "fedgmr.aggregation:merged",
    "fedgmr.simulation:Simulation._tick",
    "fedgmr.simulation:Simulation._client_scores",
    "fedgmr.simulation:Simulation.make_job",
    "fedgmr.methods.base:Method.client_start",
    "fedgmr.masks:NestedMasks.build",
    "fedgmr.masks:NestedMasks.mask",
]
PER_METHOD = {
    "fiarse": [
        "fedgmr.methods.fiarse:FIARSE.local_update",
        "fedgmr.methods.fiarse_kept:train_kept",
        "fedgmr.methods.fiarse_kept:_finite",
        "fedgmr.methods.fiarse:FIARSE.client_start",
        "fedgmr.methods.fiarse:FIARSE.thresholds",
        "fedgmr.methods.fiarse_kept:plan",
    ],
    "fjord": [
        "fedgmr.methods.fjord:FjORDMixin.local_update",
        "fedgmr.methods.fjord:gather",
        "fedgmr.methods.fjord:scatter_",
        "fedgmr.methods.width_sliced:WidthSliced.submodel",
        "fedgmr.methods.width_sliced:WidthSliced.finish",
    ],
}


def timer(target: str, totals: dict[str, list]) -> None:
    """Wrap ``module:attr.path`` in place so that its calls add to ``totals[target]`` ([calls, s])."""
    module, _, path = target.partition(":")
    if not path:
        raise SystemExit(f"{target!r}: write module:function or module:Class.method")
    try:
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for p in parents:
            owner = getattr(owner, p)
        fn = getattr(owner, name)
    except (ImportError, AttributeError) as e:
        raise SystemExit(f"{target!r}: {e}") from None
    entry = totals.setdefault(target, [0, 0.0])
    depth = [0]

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        if depth[0]:
            return fn(*args, **kwargs)
        depth[0] += 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            depth[0] -= 1
            entry[0] += 1
            entry[1] += time.perf_counter() - t0

    # A static method stays one (a plain function set on a class would be bound to its instances).
    static = isinstance(inspect.getattr_static(owner, name), staticmethod)
    setattr(owner, name, staticmethod(timed) if static else timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "functions",
        nargs="*",
        help="module:Class.method or module:function to time, added to a "
        "default set (the loop, local steps, merges, evaluations, masks, the method's own)",
    )
    ap.add_argument("--method", default="fedgmr")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--semantics", default="released", choices=("released", "clean"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    totals: dict[str, list] = {}
    for target in dict.fromkeys([*DEFAULT, *PER_METHOD.get(a.method, []), *a.functions]):
        timer(target, totals)
    cfg = engine.config(a.rounds, 1.0, batch=False, method=a.method, semantics=a.semantics)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sim = run(cfg, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
    c, rounds = sim.counters, sim.net.train_number[0]
    fl = engine.floor(sim.cfg, c, sim.data.num_classes)
    print(
        f"method {a.method}  semantics {a.semantics}  rounds {rounds}  local steps {c['steps']}  "
        f"evaluations {c['eval_passes']}"
    )
    print(f"engine wall {wall:.2f} s  compute floor {fl:.2f} s (after the run)")
    print(f"{'function':60s} {'calls':>6s} {'s':>8s} {'ms/round':>9s}")
    for target, (calls, s) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        if calls:
            print(f"{target:60s} {calls:6d} {s:8.3f} {1000 * s / rounds:9.1f}")


if __name__ == "__main__":
    main()
