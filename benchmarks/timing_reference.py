"""Print the virtual seconds per round of the network model beside the reference table (``official-code.md`` §3.9).

Stub training, 300 rounds, network seed 0. Seconds per round = (T at the tick of round 300 - T at the tick of
round 0) / 300, where a tick's T is the clock after ``collect`` in the first iteration of that round.

Usage: ``python benchmarks/timing_reference.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedgmr.network import Network, NetworkSpec

SIZES = {"CIFAR": 37.204, "FEMNIST": 25.9811, "ImageNet": 43.1007, "SO": 17.26}
HIGH = [1.0, 0.5, 0.2, 0.1] + [0.05] * 6
LOW = [1.0, 1.0, 0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
ROWS = [
    ("initial, async, IMS", HIGH, HIGH, False, True, [0], [12.34, 9.07, 14.06, 6.53]),
    ("initial, async, no IMS", HIGH, HIGH, False, False, [0], [15.49, 11.27, 17.70, 7.99]),
    ("initial, sync, IMS", HIGH, HIGH, True, True, [0], [11.85, 8.58, 13.57, 6.04]),
    ("initial, sync, no IMS", HIGH, HIGH, True, False, [0], [14.99, 10.77, 17.21, 7.49]),
    ("all rho=1, async", HIGH, [1.0] * 10, False, True, [0], [12.34, 9.07, 14.06, 6.53]),
    ("all rho=1, sync", HIGH, [1.0] * 10, True, True, [0], [191.9, 134.3, 222.2, 89.6]),
    ("low, 2 standard, async, IMS", LOW, LOW, False, True, [0, 1], [12.63, 9.28, 14.40, 6.67]),
    ("low, 1 standard, async, IMS", LOW, LOW, False, True, [0], [12.33, None, None, None]),
]


def seconds_per_round(spec: NetworkSpec, densities: list[float], rounds: int = 300) -> float:
    """Mean virtual seconds per round between the ticks of round 0 and round ``rounds``."""
    net = Network(spec)
    tick: dict[int, float] = {}
    while rounds not in tick:
        net.begin_iteration()
        r, new = net.round, net.new_round
        net.collect(densities)
        if new:
            tick[r] = net.time
        net.dispatch(densities)
    return (tick[rounds] - tick[0]) / rounds


def main() -> None:
    print(f"{'setting':30s} " + " ".join(f"{ds:>24s}" for ds in SIZES))
    worst = 0.0
    for name, tiers, dens, sync, ims, standard, refs in ROWS:
        cells = []
        for (ds, size), ref in zip(SIZES.items(), refs):
            ours = seconds_per_round(NetworkSpec(size, tiers, standard, sync, ims), dens)
            if ref is None:
                cells.append(f"{ours:8.2f} {'(n/a)':>15s}")
            else:
                dev = 100 * (ours / ref - 1)
                worst = max(worst, abs(dev))
                cells.append(f"{ours:8.2f} ({ref:7.2f} {dev:+5.2f}%)")
        print(f"{name:30s} " + " ".join(f"{c:>24s}" for c in cells))
    print(f"worst deviation {worst:.2f}%")


if __name__ == "__main__":
    main()
