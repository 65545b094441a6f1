"""FjORD (Horváth, Laskaridis, Almeida, Leontiadis, Venieris and Lane, "FjORD: Fair and Accurate Federated
Learning under heterogeneous targets with Ordered Dropout", NeurIPS 2021) inside the FedGMR simulator
(reference §1.5, §6.5, §7.5, B20).

Ordered dropout: a client of density rho may train any width p <= rho; width p keeps the front
``ceil(sqrt(p) C)`` channels of every hidden layer (the HeteroFL rule, ResNet multiples of 4; no activation
scaler). Every local step trains the physically smaller p-model on one batch, gathered from and scattered back
into the client's rho-slice. Upload = the rho-slice, zero-filled; aggregation is FjORD's own unweighted,
coverage-normalised average (``fedgmr.aggregation.fjord``: uploads masked by the client's width mask, then
sum / count of non-zero values). Synchronous rounds, sequential sends (no IMS). The run is never stopped early
(the released base FjORD stops at the global ES signal; B20: we run to the time budget).

Width set ``S = sorted({0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0} ∪ {rho})``:

* ``released`` (B20): local step j uses ``S[j mod (i + 1)]`` with i the position of rho in S (deterministic
  cycling from the smallest width; at K = 5 a rho = 1 client never trains 0.8 or 1.0).
* ``clean`` (the paper): every local step samples p uniformly from ``{p in S : p <= rho}``, from an RNG
  derived from (seed, client, training number).

Not reproduced: per-width BatchNorm (the paper's clean FjORD on BN models; the width-sliced ResNet uses
GroupNorm(4) by default, B21, and the other models have no BatchNorm), the released 1,000-class ImageNet
head and 3-layer StackOverflow transformer (B20; the model here is the one of the config).

``fjord_aux`` / ``fjord_aux_gmr`` (`abgmr_fjord` / `gmr_fjord`): the semi-asynchronous deadline, with GMR and
per-client triggers for the latter. As released (§1.5-1.6) the FjORD loop ignores IMS (sequential sends) and
keeps its unweighted aggregation, in both semantics. B8 fixed; client promotions gated by ``begin_save`` as
released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from fedgmr.errors import ConfigError
from fedgmr.index_map import gather, scatter_
from fedgmr.methods.registry import register
from fedgmr.methods.width_sliced import AuxGated, WidthSliced, counted_steps
from fedgmr.seeds import Purpose, words

if TYPE_CHECKING:
    from fedgmr.aggregation import Coverage
    from fedgmr.simulation import Simulation

BASE_WIDTHS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def width_set(rho: float) -> list[float]:
    """The sorted width set S of a client of density rho."""
    return sorted(set(BASE_WIDTHS) | {float(rho)})


def released_schedule(rho: float, steps: int) -> list[float]:
    """B20: step j trains ``S[j mod (i + 1)]``, i = position of rho in S."""
    s = width_set(rho)
    i = s.index(float(rho))
    return [s[j % (i + 1)] for j in range(steps)]


def sampled_schedule(rho: float, steps: int, rng: np.random.Generator) -> list[float]:
    """Clean: one width per step, uniform over the widths not above rho."""
    allowed = [p for p in width_set(rho) if p <= rho]
    return [allowed[int(k)] for k in rng.integers(0, len(allowed), size=steps)]


class FjORDMixin:
    script = "FJT"  # released through fjord.py (reference §1.5)

    def resolve(self, cfg: dict) -> None:
        super().resolve(cfg)
        if (
            not cfg["switches"]["fjord_width_cycling"]
            and cfg["model"]["name"] == "resnet18"
            and cfg["model"]["norm"] == "bn"
        ):
            # The FjORD paper keeps one set of BatchNorm statistics per width; we have not implemented
            # that, and sharing them across widths would silently be another method.
            raise ConfigError(
                "model.norm: clean FjORD with BatchNorm needs per-width BN statistics, which "
                "are not implemented; use model.norm: gn (the released setting) or "
                "semantics: released"
            )

    def scaler(self, sim: "Simulation", client: int, rho: float) -> float | None:
        return None  # FjORD's ordered-dropout models have no HeteroFL scaler

    def schedule(self, sim: "Simulation", client: int, rho: float) -> list[float]:
        if sim.switch("fjord_width_cycling"):  # B20
            return released_schedule(rho, sim.local_steps)
        rng = np.random.default_rng(words(sim.seed, Purpose.FJORD_WIDTHS, client, sim.net.train_number[client]))
        return sampled_schedule(rho, sim.local_steps, rng)

    def local_update(
        self, sim: "Simulation", client: int, start: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, Coverage | None]:
        """One local step per width of the schedule, each on the physically smaller p-model.

        The client's rho-slice lives in the working vector of the rho-model (of the engine's full model
        when rho >= 1) for the whole update, so a step of width rho trains it in place; a step of width
        p < rho gathers its p-slice into the p-model's working vector, trains it there and scatters it
        back (``WidthSliced.nested``). No step touches the full-size vector, and no step copies more than
        its own p-slice twice. The same values, in the same order, as gathering every step from the full
        vector into a fresh tensor.
        """
        rho = sim.densities[client]
        mom = sim.momentum[client]
        if rho >= 1.0:
            whole, idx, mom_part = None, None, mom
            part = sim.trainer.work
            part.copy_(start)
        else:
            whole, idx = self.submodel(sim, rho, 0)
            part = gather(start, idx, out=whole.trainer.work)
            mom_part = None if mom is None else gather(mom, idx)
        lr, batches = sim.client_lr[client], self.batches(sim, client)
        for j, p in enumerate(self.schedule(sim, client, rho)):
            seed, one = self.step_seed(sim, client, j), [next(batches)]
            sub, pos = (whole, None) if p >= rho else self.nested(sim, rho, p)
            if sub is None:  # the full model itself, in the engine's working vector
                sim.trainer.train(part, None, mom_part, counted_steps(sim, 1.0, one), lr, False, seed, out=part)
            elif sub.trainer.work is part:  # p's widths are rho's: the whole slice, in place
                self.train_part(sim, client, sub, part, mom_part, p, one, None, seed)
            else:
                x = gather(part, pos, out=sub.trainer.work)
                mx = None if mom_part is None else gather(mom_part, pos)
                self.train_part(sim, client, sub, x, mx, p, one, None, seed)
                scatter_(part, pos, x)
                if mx is not None:
                    scatter_(mom_part, pos, mx)
        if idx is not None and mom is not None:
            scatter_(mom, idx, mom_part)
        if idx is None:
            part = part.clone()  # the upload itself: the engine's working vector is needed again
        return self.finish(sim, client, part, idx)


class FjORD(FjORDMixin, WidthSliced):
    pass


class FjORDAux(FjORDMixin, AuxGated):
    pass


register(
    FjORD(
        "fjord",
        "FjORD: ordered-dropout widths per local step; sync, no IMS, unweighted average",
        "FjORD",
        sync=True,
        ims=False,
        merge="fjord",
        recover=False,
        client_triggers=False,
    )
)
register(
    FjORDAux(
        "fjord_aux",
        "FjORD+Aux: async deadline (no IMS, as released), unweighted average, no GMR",
        "FjORD+Aux",
        sync=False,
        ims=False,
        merge="fjord",
        recover=False,
        client_triggers=False,
    )
)
register(
    FjORDAux(
        "fjord_aux_gmr",
        "FjORD+Aux+GMR: +Aux with GMR and per-client triggers",
        "FjORD+Aux+GMR",
        sync=False,
        ims=False,
        merge="fjord",
        recover=True,
        client_triggers=True,
    )
)
