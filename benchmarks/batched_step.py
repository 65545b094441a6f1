"""Batched local training against the bare sequential floor (issue 9, item 3).

The FEMNIST-shaped local work of one round of ``benchmarks/engine.py`` (LEAF CNN at full width, 10 clients x
K=5 steps at batch 20, masks of the high-heterogeneity tiers) is trained by each variant; the *floor* is the
same 50 SGD steps in a bare ``torch.optim.SGD`` loop on one model (no masks, no copies), as in
``benchmarks/engine.py``. Each variant runs in its own child process (so its peak memory is its own), and
variants alternate with the floor round by round, so a machine shared with other work slows them alike.

    python benchmarks/batched_step.py [--rounds 4] [--threads 2] [--width 1.0] [--variants floor,threads,...]

Variants:
  floor       bare torch.optim.SGD loop, all clients one after another (``--threads`` intra-op threads)
  sequential  today's engine path: ``Trainer.train`` per client on one working model
  threads     ``fedgmr.batched`` threads backend: ``--threads`` workers of 1 intra-op thread each
  vmap        ``fedgmr.batched`` vmap backend: one batched forward/backward per step over all clients
  procs       two 1-thread processes with half the clients each (the design's reference point)

The last line is ``batched/floor <ratio>`` for the best batched variant.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedgmr.batched import GroupTrainer, Job  # noqa: E402
from fedgmr.flat import flatten_module  # noqa: E402
from fedgmr.masks import NestedMasks  # noqa: E402
from fedgmr.models import build_model  # noqa: E402
from fedgmr.training import Trainer, loss_fn  # noqa: E402

CLIENTS, STEPS, BATCH, CLASSES = 10, 5, 20, 62
TIERS = (1.0, 0.5, 0.2, 0.1, 0.05)  # high heterogeneity: two clients per tier
VARIANTS = ("floor", "sequential", "threads", "vmap", "procs")


def _data(clients: range, seed: int = 0) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    per = {
        c: [
            (torch.rand(BATCH, 1, 28, 28, generator=g), torch.randint(0, CLASSES, (BATCH,), generator=g))
            for _ in range(STEPS)
        ]
        for c in range(CLIENTS)
    }
    return [per[c] for c in clients]


def _setup(width: float):
    torch.manual_seed(0)
    model = build_model("leaf_cnn", num_classes=CLASSES, width=width)
    layout, work, _ = flatten_module(model, model.prunable)
    trainer = Trainer(model, layout, work, "bce_onehot", 0.0, 0.0)  # FEMNIST: no momentum, no weight decay
    masks = NestedMasks.build(work.abs(), layout, None)
    return model, trainer, masks


def _round_floor(model, opt, data) -> None:
    model.train()
    for batches in data:
        for x, y in batches:
            opt.zero_grad()
            loss_fn("bce_onehot", model(x), y).backward()
            opt.step()


def child(variant: str, rounds: int, threads: int, width: float, clients: range) -> dict:
    """Run ``rounds`` rounds of one variant after one warm-up round; report seconds per round and peak RSS."""
    torch.set_num_threads(threads)
    model, trainer, masks = _setup(width)
    data = _data(clients)
    global_w = trainer.work.clone()
    dens = [TIERS[c // 2] for c in clients]
    cmasks = [None if d >= 1.0 else masks.mask(d) for d in dens]
    outs = [torch.empty_like(global_w) for _ in clients]
    if variant == "floor":
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def one_round():
            _round_floor(model, opt, data)
    elif variant == "sequential":

        def one_round():
            for i, batches in enumerate(data):
                trainer.train(global_w, cmasks[i], None, batches, 0.01, remask=False, seed=i, out=outs[i])
    else:
        gt = GroupTrainer(trainer, variant, workers=threads)

        def one_round():
            jobs = [
                Job(global_w, cmasks[i], None, data[i], 0.01, False, i, outs[i]) for i in range(len(data))
            ]
            gt.train(jobs)

    one_round()  # warm-up: replicas, thread pools, kernel caches
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        one_round()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times, "peak_mib": peak}


def _spawn(
    variant: str, rounds: int, threads: int, width: float, lo: int = 0, hi: int = CLIENTS
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--rounds",
        str(rounds),
        "--threads",
        str(threads),
        "--width",
        str(width),
        "--clients",
        f"{lo}:{hi}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def _result(p: subprocess.Popen) -> dict:
    out, _ = p.communicate()
    if p.returncode:
        raise SystemExit(f"child failed with status {p.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def measure(variant: str, rounds: int, threads: int, width: float) -> dict:
    if variant != "procs":
        return _result(_spawn(variant, rounds, threads, width))
    # Two 1-thread processes with half the clients each, running at the same time; a round ends when both do.
    half = CLIENTS // 2
    a, b = (
        _spawn("sequential", rounds, 1, width, 0, half),
        _spawn("sequential", rounds, 1, width, half, CLIENTS),
    )
    ra, rb = _result(a), _result(b)
    return {
        "times": [max(x, y) for x, y in zip(ra["times"], rb["times"])],
        "peak_mib": ra["peak_mib"] + rb["peak_mib"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds per variant and repetition")
    ap.add_argument("--repeats", type=int, default=2, help="alternations of every variant with the floor")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--variants", default="floor,sequential,threads,vmap,procs")
    ap.add_argument("--child", choices=VARIANTS[:-1], help=argparse.SUPPRESS)
    ap.add_argument("--clients", default=f"0:{CLIENTS}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        lo, hi = (int(v) for v in args.clients.split(":"))
        print(json.dumps(child(args.child, args.rounds, args.threads, args.width, range(lo, hi))))
        return
    variants = [v for v in args.variants.split(",") if v != "floor"]
    res: dict[str, dict] = {v: {"times": [], "peak_mib": 0.0} for v in ["floor", *variants]}
    for _ in range(args.repeats):
        for v in variants:
            for name in ("floor", v):  # the floor right before each variant: same machine state
                r = measure(name, args.rounds, args.threads, args.width)
                res[name]["times"] += r["times"]
                res[name]["peak_mib"] = max(res[name]["peak_mib"], r["peak_mib"])
    floor = statistics.median(res["floor"]["times"])
    print(
        f"LEAF CNN width {args.width}, {CLIENTS} clients x {STEPS} steps at batch {BATCH}, {args.threads} threads; "
        f"seconds per round, median of {args.rounds * args.repeats}"
    )
    print(f"{'variant':<11} {'median s':>9} {'min s':>7} {'ratio':>6} {'peak MiB':>9}")
    best = None
    for name, r in res.items():
        med = statistics.median(r["times"])
        ratio = med / floor
        print(f"{name:<11} {med:9.3f} {min(r['times']):7.3f} {ratio:6.2f} {r['peak_mib']:9.0f}")
        if name in ("threads", "vmap") and (best is None or ratio < best):
            best = ratio
    if best is not None:
        print(f"batched/floor {best:.3f}")


if __name__ == "__main__":
    main()
