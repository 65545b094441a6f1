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

from fedgmr.methods.width_sliced import AuxGated, WidthSliced, register_family

register_family(WidthSliced, AuxGated, "heterofl", "HeteroFL", "static front width slices")
