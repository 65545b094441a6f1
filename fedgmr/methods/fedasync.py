"""FedAsync (Xie et al., "Asynchronous Federated Optimization", 2019) as run in the FedGMR paper
(reference §7.2, B7): full models on the semi-asynchronous deadline loop, every on-time arrival of a
round beta-mixed into the global model with polynomial staleness weights (a = 0.6).
"""

from fedgmr.methods.base import Method
from fedgmr.methods.registry import register

register(
    Method(
        "fedasync",
        "FedAsync: async deadline loop, full models, staleness beta-mixing",
        "FedAsync",
        ims=False,
        merge="mix",
        full_model=True,
        client_triggers=False,
    )
)
