"""One server merge (`fedgmr.aggregation`) of full-size LEAF CNN uploads, optionally against another checkout.

    python benchmarks/merge.py [--rule mix] [--uploads 1,2,3] [--calls 12] [--against /path/to/other/checkout]

Median and fastest of ``--calls`` merges of 1, 2, 3 ... uploads covered by value (6.6 M floats each, two
threads). With ``--against`` the other checkout's ``fedgmr/aggregation.py`` is loaded beside this one and
the two alternate call by call in this process, so both see the same machine and the same allocator
(this process applies ``fedgmr.allocator``'s policy unless ``FEDGMR_MALLOC=system``).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedgmr import aggregation  # noqa: E402
from fedgmr.allocator import keep_freed_buffers  # noqa: E402

NUMEL = 6_603_710  # the LEAF CNN's flat vector


def _load(checkout: Path):
    spec = importlib.util.spec_from_file_location("other_aggregation", checkout / "fedgmr" / "aggregation.py")
    if spec is None or not (checkout / "fedgmr" / "aggregation.py").is_file():
        raise SystemExit(f"--against: no fedgmr/aggregation.py under {checkout}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rule", default="mix", choices=sorted(aggregation.AGGREGATORS), help="aggregation rule")
    ap.add_argument("--uploads", default="1,2,3", help="comma-separated numbers of uploads per merge")
    ap.add_argument("--calls", type=int, default=12)
    ap.add_argument("--against", type=Path, help="root of another checkout to alternate with")
    a = ap.parse_args()
    counts = [int(k) for k in a.uploads.split(",") if k]
    if not counts or min(counts) < 1 or a.calls < 1:
        ap.error("--uploads takes positive integers, --calls at least 1")
    torch.set_num_threads(2)
    print(f"rule {a.rule}, allocator policy {'on' if keep_freed_buffers() else 'off (C library defaults)'}")
    rules = {"this": aggregation} | ({"against": _load(a.against)} if a.against else {})
    g = torch.Generator().manual_seed(0)
    w = torch.randn(NUMEL, generator=g)
    uploads = [torch.randn(NUMEL, generator=g) for _ in range(max(counts))]
    coeffs = [1.0 / (i + 2) for i in range(max(counts))]
    for k in counts:
        times: dict[str, list[float]] = {name: [] for name in rules}
        for _ in range(a.calls):
            for name, mod in rules.items():
                t0 = time.perf_counter()
                out = mod.AGGREGATORS[a.rule](w, uploads[:k], [mod.BY_VALUE] * k, coeffs[:k], 0.7)
                times[name].append(time.perf_counter() - t0)
                del out
        for name, ts in times.items():
            print(
                f"{k} upload(s), {name:7s}: median {statistics.median(ts) * 1e3:6.1f} ms, "
                f"fastest {min(ts) * 1e3:6.1f} ms"
            )


if __name__ == "__main__":
    main()
