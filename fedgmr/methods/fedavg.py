"""FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data",
AISTATS 2017) inside the heterogeneous-bandwidth simulator (reference §7.1).

Synchronous rounds, every client trains the full model over its own tier bandwidth, plain average. As
released, FEMNIST starts at rho_min = 0.5 with magnitude masks and lets ES raise it to 1.0 (B19); the
clean variant is full-model from the start.
"""

from fedgmr.methods.base import Method
from fedgmr.methods.registry import register


class FedAvg(Method):
    def default_min_density(self, cfg: dict) -> float:
        if cfg["switches"]["fedavg_femnist_half"] and cfg["dataset"]["name"] in ("femnist", "fmnist"):
            return 0.5
        return 1.0


register(
    FedAvg(
        "fedavg",
        "FedAvg: synchronous, full models, plain average",
        "FedAvg",
        sync=True,
        ims=False,
        merge="fa",
        full_model=True,
        client_triggers=False,
    )
)
