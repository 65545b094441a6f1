"""What a method is: switches the event loop reads, plus hooks it calls.

The loop (``fedgmr.simulation``) knows nothing about which method runs. It asks the method:
- how the run is scheduled (``sync``, ``ims``) and merged (``merge``: a key of ``AGGREGATORS``);
- whether densities are restored (``recover``, ``client_triggers``, restoration trigger);
- which masks exist (``rebuild_masks``) and what a client trains on (``client_start``);
- how a client trains and what its upload covers (``local_update``).

The defaults implement the magnitude-mask family of the reference (FedGMR, its ablations, FedAvg,
FedAsync): nested global masks from |w| rebuilt at every evaluation tick (§4), clients train the current
global values under their mask. Baselines with other sub-models override the hooks.
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch

from fedgmr.aggregation import BY_VALUE, Coverage
from fedgmr.errors import ConfigError

if TYPE_CHECKING:
    from fedgmr.batched import Job
    from fedgmr.simulation import Simulation


@dataclass
class Method:
    name: str
    summary: str
    label: str  # the paper's name for it
    sync: bool = False
    ims: bool = True
    merge: str = "ma"
    recover: bool = True
    client_triggers: bool = True
    trigger: str = "early"
    min_density: float = 0.02
    full_model: bool = False  # every client trains the dense model (FedAvg, FedAsync)
    use_coefficients: bool = True  # per-layer time coefficients in mask search (§4.3)
    notes: list[str] = field(default_factory=list)
    # The released entry point that runs this family (reference §1.2-1.5): CMD (main), ABL (ablations),
    # SYN (width-sliced), FJT (FjORD). It decides released behaviour that differs by script (B28).
    script: ClassVar[str] = "CMD"

    # ---- per-run instances ---------------------------------------------------------------------
    def for_run(self) -> "Method":
        """A fresh copy for one simulation. The registered instances are shared by every run in the
        process (the workflow, tests); derived per-run state (sub-model caches, mask memos) lives on the
        copy and dies with the run (``run_state``)."""
        return dataclasses.replace(self)

    def run_state(self, sim: "Simulation", factory):
        """This run's derived state, built by ``factory()`` on first use. One instance serves one
        simulation: a second one would silently read the first one's caches, so it is refused."""
        owner = self.__dict__.get("_run_owner")
        if owner is None:
            self._run_owner, self._run_state = weakref.ref(sim), factory()
        elif owner() is not sim:
            raise RuntimeError(
                f"method {self.name!r}: this instance already serves another simulation; "
                "build one per run with Method.for_run()"
            )
        return self._run_state

    # ---- configuration -------------------------------------------------------------------------
    def resolve(self, cfg: dict) -> None:
        """Method-specific defaults and checks on the resolved config (called once)."""
        rs = cfg["restoration"]
        if rs["trigger"] is None:
            rs["trigger"] = self.trigger
        if rs["min_density"] is None:
            rs["min_density"] = self.default_min_density(cfg)
        if cfg["fixed_density"] is not None and self.name != "fixed_density":
            raise ConfigError(f"fixed_density: only used by method 'fixed_density', not {self.name!r}")

    def default_min_density(self, cfg: dict) -> float:
        return 1.0 if self.full_model else self.min_density

    def initial_densities(self, cfg: dict, tiers: list[float]) -> list[float]:
        """Tier densities; as released the floor rho_min is applied at the first tick (GMR floors
        every client to it), in clean semantics from the start."""
        if cfg["switches"]["startup_tiers"]:
            return list(tiers)
        floor = cfg["restoration"]["min_density"]
        return [max(t, floor) for t in tiers]

    def restoration_options(self, cfg: dict) -> dict:
        """Extra ``RestorationConfig`` settings of this method, fixed for the run (e.g. the width-sliced
        families' begin_save gate on client promotions). Default: none."""
        return {}

    # ---- per-round hook ------------------------------------------------------------------------
    def on_round(self, sim: "Simulation", round_: int, tick: bool) -> None:
        """Called at the start of every loop iteration, before local training (e.g. FIARSE rebuilds
        its masks every round, FedRolex advances its window). Default: nothing."""

    # ---- sub-models ----------------------------------------------------------------------------
    def rebuild_masks(self, sim: "Simulation") -> None:
        """Nested magnitude masks from the current global model (every tick, reference §4.3)."""
        sim.rebuild_magnitude_masks(use_coefficients=self.use_coefficients)

    def client_mask(self, sim: "Simulation", density: float) -> torch.Tensor | None:
        if sim.masks is None or density >= 1.0:
            return None
        return sim.masks.mask(density)

    def client_start(self, sim: "Simulation", client: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What a client receives now: current global values under its mask (§4.4).

        Returns (weights, mask). The weights may be the live global vector, unmasked: the trainer applies
        the mask while copying them in (one pass instead of two), and the loop snapshots them when a
        download carries over to a later round.
        """
        return sim.global_w, self.client_mask(sim, sim.densities[client])

    # ---- local training ------------------------------------------------------------------------
    def make_job(
        self, sim: "Simulation", client: int, start: torch.Tensor, mask: torch.Tensor | None
    ) -> "Job | None":
        """The client's local training as a job the loop trains together with the others, or None when
        this method trains its clients itself (it overrides :meth:`local_update`)."""
        if type(self).local_update is not Method.local_update:
            return None
        return sim.make_job(client, start, mask)

    def finish_job(
        self, sim: "Simulation", client: int, upload: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, Coverage | None]:
        """(upload, coverage) from a trained job. coverage None = everything covered."""
        if sim.switch("value_coverage"):
            return upload, BY_VALUE  # released: coverage detected by value, every tensor (§6)
        return upload, mask

    def local_update(
        self, sim: "Simulation", client: int, start: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, Coverage | None]:
        """Train K local steps now; return (upload, coverage)."""
        return self.finish_job(sim, client, sim.train_locally(client, start, mask), mask)

    # ---- evaluation ----------------------------------------------------------------------------
    def eval_weights(self, sim: "Simulation", weights: torch.Tensor) -> torch.Tensor:
        """The weights the evaluation forward computes with (server, buffer average, client scores).
        Default: unchanged. FIARSE as released evaluates through its threshold layers (B3)."""
        return weights
