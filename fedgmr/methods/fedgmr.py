"""FedGMR and its ablations (Ma et al., "Breaking the Capacity Bottleneck in Model-Heterogeneous FL via
Gradual Model Restoration", ICML 2026, arXiv 2512.05372).

FedGMR = semi-asynchronous deadline (Asyn) + incremental model splitting accounting (IMS) + mask-aware,
coverage-normalised, staleness-weighted aggregation (MA, the paper's "buffer") + gradual model
restoration (GMR) with global and per-client early-stopping triggers. Each ablation switches one part
off (reference §1.2–1.3).
"""

from fedgmr.methods.base import Method
from fedgmr.methods.registry import register

register(Method("fedgmr", "FedGMR: async + IMS + MA + GMR (ES triggers)", "FedGMR"))
register(
    Method(
        "fedgmr_fixed",
        "FedGMR with time-triggered restoration (fixed schedule)",
        "GMR (Fixed)",
        trigger="time",
        client_triggers=False,
    )
)
register(
    Method(
        "wo_gmr",
        "FedGMR without restoration (densities stay at their tiers)",
        "w/o GMR",
        recover=False,
        client_triggers=False,
    )
)
register(Method("wo_asyn", "FedGMR with synchronous rounds", "w/o Asyn", sync=True))
register(Method("wo_buff", "FedGMR with beta-mixing instead of MA replace", "w/o Buff", merge="mix"))
register(Method("wo_ims", "FedGMR with sequential sub-model sends (no IMS)", "w/o IMS", ims=False))
register(
    Method("wo_buff_ims", "FedGMR without MA and without IMS", "w/o (Buff, IMS)", merge="mix", ims=False)
)
