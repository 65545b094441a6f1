"""The run's mutable state: one dataclass, saved and restored field by field.

Everything the event loop changes while it runs lives in :class:`RunState` (tensors, per-client lists,
the results so far) or in a component with its own ``state_dict`` (the clock, staleness, restoration,
index streams, masks; see ``Simulation.state_dict``). A checkpoint is ``RunState.to_dict()`` plus those:
adding a field here is all it takes for it to be saved and resumed, so a killed run resumes bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class RunState:
    # ---- models --------------------------------------------------------------------------------------
    global_w: torch.Tensor  # the server model, flat
    uploads: list  # each client's latest trained model (its buffer is reused by its next training)
    # The server's buffer of received uploads when arrivals are not phantom (§6.6, B1); else unused.
    received: list
    client_masks: list  # the mask each client's latest upload was trained under (None: dense)
    # What each client's upload covers for mask-aware aggregation: a bool vector, None (everything) or
    # fedgmr.aggregation.BY_VALUE (its non-zeros, released).
    coverage: list
    momentum: list  # each client's optimiser momentum (persists across rounds, §4.4), or None
    # ---- downloads in flight ----------------------------------------------------------------------------
    pending: dict  # client -> (weights, mask) it will train on next; None = the current sub-model
    snapshots: dict  # client -> (weights, mask) of a download still in flight
    # ---- schedule --------------------------------------------------------------------------------------
    client_lr: list  # the LR each client was last pushed
    lr_steps: int  # steps of the server's LR scheduler (§8.2)
    densities: list  # each client's nominal density (restoration moves it)
    # Released IMS broadcast sizes lag one tick (B10): rounds of tick k use the densities set at tick k-1.
    ims_dens: list | None
    prev_tick_dens: list
    # ---- restoration signals -----------------------------------------------------------------------------
    client_scores: list  # each client's last measured GMR score (-1: never)
    score_fresh: list  # measured since the last tick
    last_staleness: list
    arrived_since_tick: list
    # ---- results so far ------------------------------------------------------------------------------------
    metrics: list = field(default_factory=list)
    client_rows: list = field(default_factory=list)
    timing: list = field(default_factory=list)  # machine-dependent, kept out of metrics.csv
    last_tick_round: int = -1
    tick_index: int = 0
    upload_mb: float = 0.0  # nominal traffic so far, in MB (§3.1 sizes)
    download_mb: float = 0.0
    wall_elapsed: float = 0.0

    @classmethod
    def initial(
        cls,
        global_w: torch.Tensor,
        n: int,
        densities: list[float],
        lr: float,
        momentum: bool,
        ims_lag: bool,
    ) -> RunState:
        """The state before round 0."""
        return cls(
            global_w=global_w,
            uploads=[None] * n,
            received=[None] * n,
            client_masks=[None] * n,
            coverage=[None] * n,
            momentum=[torch.zeros_like(global_w) if momentum else None for _ in range(n)],
            pending={i: None for i in range(n)},
            snapshots={},
            client_lr=[lr] * n,
            lr_steps=0,
            densities=list(densities),
            ims_dens=[0.0] * n if ims_lag else None,
            prev_tick_dens=[0.0] * n,
            client_scores=[-1.0] * n,
            score_fresh=[False] * n,
            last_staleness=[0] * n,
            arrived_since_tick=[0] * n,
        )

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> RunState:
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise KeyError(f"checkpoint state lacks {missing}")
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def delegate_state(cls):
    """Class decorator: ``obj.<field>`` reads and writes ``obj.state.<field>`` for every RunState field,
    so the loop and the methods keep their plain attribute names while the state stays one object."""
    for f in fields(RunState):

        def getter(self, name=f.name):
            return getattr(self.state, name)

        def setter(self, value, name=f.name):
            setattr(self.state, name, value)

        setattr(cls, f.name, property(getter, setter, doc=f"RunState.{f.name}"))
    return cls
