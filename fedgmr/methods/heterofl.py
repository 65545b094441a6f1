"""HeteroFL (Diao, Ding and Tarokh, "HeteroFL: Computation and Communication Efficient Federated Learning
for Heterogeneous Clients", ICLR 2021) inside the FedGMR simulator (reference §1.4, §7.3).

A client of density rho trains a physically smaller dense model: output channels ``[0, ceil(sqrt(rho) C))``
of every hidden layer, inputs following the previous layer (ResNet widths in multiples of 4, transformer width
factor; ``fedgmr.models.slicing``). Uploads are scattered back zero-filled and merged by coverage-normalised
averaging (MA, c = 1/N in sync mode). ResNet and the transformer divide training activations by the width
scaler. Synchronous rounds, sequential sub-model sends (no IMS).

``heterofl_aux`` (+Aux, `abgmr_heterofl`) adds the semi-asynchronous deadline, IMS accounting and
staleness-weighted MA; ``heterofl_aux_gmr`` (+Aux+GMR, `gmr_heterofl`) adds GMR with per-client triggers.
B8 (the released `PRR` never decrements the post-restoration wait, freezing GMR) is fixed in both semantics;
as in `PRR`, per-client promotions wait for the global ``begin_save`` gate in ``released``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedgmr.methods.registry import register
from fedgmr.methods.width_sliced import WidthSliced

if TYPE_CHECKING:
    from fedgmr.simulation import Simulation


class AuxGated(WidthSliced):
    """Width-sliced +Aux(+GMR): as released (`PRR`, `FJT`) client promotions wait for ``begin_save``."""

    def on_round(self, sim: "Simulation", round_: int, tick: bool) -> None:
        # Pure configuration (derived from the config every round, nothing to checkpoint).
        sim.restoration.cfg.gate_clients_on_begin_save = sim.cfg["semantics"] == "released"
        sim.restoration.cfg.freeze_after_global = False  # B8 fixed in both semantics


def register_family(cls: type[WidthSliced], aux_cls: type[WidthSliced], name: str, label: str,
                    what: str) -> None:
    """Register ``name``, ``name_aux`` and ``name_aux_gmr`` with the switches of reference §1.4/§1.6."""
    register(cls(name, f"{label}: {what}; sync, no IMS, MA", label, sync=True, ims=False, merge="ma",
                 recover=False, client_triggers=False))
    register(aux_cls(f"{name}_aux", f"{label}+Aux: async deadline, IMS, staleness-weighted MA, no GMR",
                     f"{label}+Aux", sync=False, ims=True, merge="ma", recover=False, client_triggers=False))
    register(aux_cls(f"{name}_aux_gmr", f"{label}+Aux+GMR: +Aux with GMR and per-client triggers",
                     f"{label}+Aux+GMR", sync=False, ims=True, merge="ma", recover=True,
                     client_triggers=True))


register_family(WidthSliced, AuxGated, "heterofl", "HeteroFL", "static front width slices")
