"""FedRolex (Alam, Liu, Yan and Zhang, "FedRolex: Model-Heterogeneous Federated Learning with Rolling
Sub-Model Extraction", NeurIPS 2022) inside the FedGMR simulator (reference §7.4, B11).

As HeteroFL (``fedgmr.methods.heterofl``), but every sliced layer keeps a rolling window of channels
``(offset + arange(k)) mod C``. The window belongs to the model a client trains, i.e. to the round that
dispatched it (``tau = sim.net.payload_round[client]``, -1 for the initial model), so a carried-over
download keeps its window and a resumed run is exact:

* ``clean`` (the paper's method): the window advances by one channel every round, ``offset = tau + 1``
  (the round the model is trained in under synchronous rounds; 0 for the initial model).
* ``released`` (B11): FEMNIST and CIFAR (LEAF CNN, VGG-11) are forced static, identical to HeteroFL; ImageNet
  and StackOverflow (ResNet-18, transformer) recompute the window only at evaluation ticks as
  ``torch.roll(arange(C), t)[:k]`` with t the round of the last tick, i.e. ``offset = -I * floor(tau / I)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedgmr.methods.width_sliced import AuxGated, WidthSliced, register_family

if TYPE_CHECKING:
    from fedgmr.simulation import Simulation

# Models whose released FedRolex rolls at ticks; the others are static (`legacy_static_fedrolex`).
TICK_ROLLING_MODELS = ("resnet18", "transformer_lm")


def rolling_offset(tau: int, semantics: str, model_name: str, interval: int) -> int:
    """Window offset of a model dispatched in round ``tau`` (-1: the initial model)."""
    if semantics == "clean":
        return tau + 1
    if model_name not in TICK_ROLLING_MODELS or tau < 0:
        return 0
    return -interval * (tau // interval)


class FedRolexMixin:
    def window_offset(self, sim: "Simulation", client: int) -> int:
        return rolling_offset(
            sim.net.payload_round[client],
            "released" if sim.switch("fedrolex_static") else "clean",  # B11
            sim.cfg["model"]["name"],
            sim.cfg["schedule"]["interval"],
        )


class FedRolex(FedRolexMixin, WidthSliced):
    pass


class FedRolexAux(FedRolexMixin, AuxGated):
    pass


register_family(FedRolex, FedRolexAux, "fedrolex", "FedRolex", "rolling width windows")
