"""Aggregation ablation of the FedGMR paper (reference §1.3, §6.3–6.4, B24).

GA averages updates with a coverage-ignoring denominator; FA is the zero-filled average of sparse
uploads. ``gmr_*`` add restoration with per-client triggers; the plain variants have none (the README
and autorun wording). The published CIFAR-10 GA/FA numbers came from code with restoration on and the
global trigger only (B24): ``ga_global``/``fa_global`` are that variant, so the aggregation table can
compare like with like.
"""

from fedgmr.methods.base import Method
from fedgmr.methods.registry import register

register(Method("gmr_ga", "GMR with gradient averaging (GA)", "GMR+GA", merge="ga"))
register(Method("gmr_fa", "GMR with zero-filled federated averaging (FA)", "GMR+FA", merge="fa"))
register(
    Method(
        "ga",
        "gradient averaging (GA) without restoration",
        "GA",
        merge="ga",
        recover=False,
        client_triggers=False,
    )
)
register(
    Method(
        "fa",
        "zero-filled averaging (FA) without restoration",
        "FA",
        merge="fa",
        recover=False,
        client_triggers=False,
    )
)
for _merge, _label in (("ga", "GA"), ("fa", "FA")):
    register(
        Method(
            f"{_merge}_global",
            f"{_label} with restoration on the global trigger only (the published CIFAR-10 {_label}, B24)",
            f"{_label} (global GMR)",
            merge=_merge,
            recover=True,
            client_triggers=False,
        )
    )
