"""GMR, gradual model restoration (reference §5; `PRF` ``FedMapServer.GMR`` L1721 and its caller).

At every evaluation tick the server feeds early-stopping monitors with accuracies and raises
densities when they stagnate:

* a **global** monitor on the buffer-average accuracy (B14) raises the floor ``rho_min`` one ladder
  step; every client below the floor is lifted to it;
* optional **per-client** monitors (``need_client_acc``) promote one client one ladder step.

Monitor semantics (the released ``EarlyStopping``): patience P, delta 0, "improved" = strictly greater
than the best score. The first score after a reset of the best score only initialises it (and zeroes
the counter). The global monitor ignores a tick whose score equals its previous score; per-client
monitors do not, so a slow client's stale, repeated score counts as no improvement (B13). A monitor is
*exhausted* once its counter of non-improving ticks reaches its patience, and stays exhausted on every
further non-improving tick, because firing does not reset the counter.

Per tick (``on_tick``)::

    decrement every client cool-down
    run GMR unless wait > 0 (the wait gate is bypassed in the 'time' and 'mixed' trigger modes)
    decrement wait (unless freeze_after_global, B8)

Timing consequences: the first global restoration needs 2P non-improving ticks (the ``begin_save``
gate swallows the first P); after a global restoration GMR is skipped for P − 1 ticks; a promoted client
is eligible again 2P ticks later. Densities never decrease.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Restoration", "RestorationConfig"]

log = logging.getLogger(__name__)

TRIGGERS = ("early", "time", "mixed")
# "Fully restored": the released code tests rho_min >= 0.99 (client-score period, §5), > 0.99 (buffer
# average replaced by the server model, §6.6) and == 1 (GMR's patience); on every density the ladder or
# the capped fixed step can reach these agree, so one predicate stands for all three.
_FULL = 0.99


def fully_restored(rho: float) -> bool:
    """True when a density (a client's, or the floor rho_min) means the full model."""
    return rho > _FULL


STEP_MODES = ("ladder", "fixed")
# The ladder's "next value" must exceed the current one by more than this (released constant), so
# that 0.1 -> 0.1000001 float noise never counts as a step.
_LADDER_MARGIN = 0.01
_TIME_EPS = 1e-12


@dataclass
class RestorationConfig:
    """How densities are restored.

    Attributes:
        recover: restore at all (``-re``). Without it the monitors only raise the global patience.
        client_triggers: per-client monitors exist (``need_client_acc``); needed for client promotions.
        patience: P, in ticks.
        trigger: ``"early"`` (early-stopping triggers), ``"time"`` (fixed schedule only, no ES and no
            per-client promotions) or ``"mixed"`` (both).
        step_mode: ``"ladder"`` (next ladder value) or ``"fixed"`` (``+ step``, capped at 1).
        step: the fixed step.
        ladder: the densities the ladder walks (the released code uses the set of tier densities).
        time_total: T of the time schedule, in virtual seconds (required > 0 for time/mixed).
        time_points: fractions of T at which the time schedule advances one stage.
        time_ladder: the stages of the time schedule.
        gate_clients_on_begin_save: per-client promotions wait for the ``begin_save`` gate too
            (`PRR` and `FJT`; `PRF` does not gate them).
        freeze_after_global: reproduce B8 (`PRR` never decrements ``wait``, so GMR freezes after the
            first global restoration).
    """

    recover: bool
    client_triggers: bool
    patience: int
    trigger: str = "early"
    step_mode: str = "ladder"
    step: float = 0.1
    ladder: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
    time_total: float = 0.0
    time_points: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    time_ladder: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
    gate_clients_on_begin_save: bool = False
    freeze_after_global: bool = False

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}, got {self.trigger!r}")
        if self.step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {self.step_mode!r}")
        if self.step_mode == "fixed" and not self.step > 0:
            raise ValueError(f"fixed step must be > 0, got {self.step}")
        for name in ("ladder", "time_points", "time_ladder"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values or any(not 0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"{name} must be non-empty values in [0, 1], got {values}")
            # The released parser sorts and de-duplicates these lists.
            setattr(self, name, tuple(sorted(set(values))))
        if self.recover and self.trigger != "early" and not self.time_total > 0:
            raise ValueError(f"trigger {self.trigger!r} needs time_total > 0")


class _Monitor:
    """One early-stopping monitor (see the module docstring for the exact semantics)."""

    def __init__(self, patience: int, skip_repeats: bool):
        self.patience = patience
        self.skip_repeats = skip_repeats
        self.counter = 0
        self.best: float | None = None
        self.last: float | None = None

    def observe(self, score: float) -> bool:
        """Feed one score; return ``True`` when the monitor is exhausted (no improvement for P ticks)."""
        if self.best is None:
            self.best = self.last = score
            self.counter = 0
            return False
        if self.skip_repeats and self.last == score:
            # The global signal is unchanged: nothing was learned this tick, so it is not counted.
            return False
        self.last = score
        if score <= self.best:
            self.counter += 1
            return self.counter >= self.patience
        self.best = score
        self.counter = 0
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"patience": self.patience, "counter": self.counter, "best": self.best, "last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.patience = int(state["patience"])
        self.counter = int(state["counter"])
        self.best = state["best"]
        self.last = state["last"]


class Restoration:
    """Client densities and the GMR state machine.

    Args:
        cfg: the restoration settings.
        densities: initial client densities (the tiers).
        min_density: initial floor ``rho_min`` (0.02 for FedGMR).

    Attributes:
        densities: current client densities (only ever increase).
        rho_min: current floor.
        events: one dict per change, for logs: ``tick`` (0-based ``on_tick`` call), ``time``, ``kind``
            (``"global"``, ``"time"``, ``"client"``, ``"floor"``), ``client`` (None for global/time),
            ``old``, ``new``.
        stop_requested: the global monitor stagnated with nothing left to restore (the released code
            sets ``early_stop`` and ignores it except in `FJT`).
    """

    def __init__(self, cfg: RestorationConfig, densities: list[float], min_density: float):
        if not densities:
            raise ValueError("need at least one client")
        if any(not 0.0 < d <= 1.0 for d in densities) or not 0.0 <= min_density <= 1.0:
            raise ValueError("densities must be in (0, 1] and min_density in [0, 1]")
        self.cfg = cfg
        self.densities = [float(d) for d in densities]
        self.rho_min = float(min_density)
        self.num_clients = len(densities)
        p = cfg.patience
        self.monitors = [_Monitor(p, skip_repeats=True)]
        if cfg.client_triggers:
            self.monitors += [_Monitor(p, skip_repeats=False) for _ in densities]
        self.wait = 0
        self.cooldown = [0] * self.num_clients
        self.begin_save = False
        self.stop_requested = False
        self.ticks = 0
        self.events: list[dict[str, Any]] = []
        # Time schedule: the stage is the last ladder entry the initial floor already reaches, 0 if none
        # (0.02 < 0.05), so the first time point moves the floor to the *second* entry (0.1).
        self.time_cursor = 0
        self.time_stage = 0
        for i, d in enumerate(cfg.time_ladder):
            if self.rho_min + _TIME_EPS >= d:
                self.time_stage = i

    # ------------------------------------------------------------------ ladder
    def next_density(self, current: float) -> float:
        """The density one step above ``current`` (ladder: smallest ladder value > current + 0.01)."""
        if self.cfg.step_mode == "fixed":
            return min(1.0, current + self.cfg.step)
        above = [d for d in set(self.cfg.ladder) | {current} if d > current + _LADDER_MARGIN]
        return min(above) if above else 1.0

    # ------------------------------------------------------------------ tick
    def on_tick(
        self, time: float, global_score: float, client_scores: list[float] | None = None
    ) -> list[int]:
        """Run one evaluation tick.

        Args:
            time: virtual time of the tick (used by the time schedule).
            global_score: the global signal (buffer-average accuracy, or the server accuracy once
                ``rho_min`` > 0.99; the caller chooses).
            client_scores: one score per client (the last measured one for clients not re-evaluated);
                required when ``client_triggers``.

        Returns:
            the clients whose density changed, ascending.
        """
        if self.cfg.client_triggers and (client_scores is None or len(client_scores) != self.num_clients):
            raise ValueError(f"client_triggers needs {self.num_clients} client scores")
        before = list(self.densities)
        for i, c in enumerate(self.cooldown):
            if c > 0:
                self.cooldown[i] = c - 1
        if self.wait <= 0 or self.cfg.trigger != "early":
            self._gmr(time, float(global_score), client_scores)
        if self.wait > 0 and not self.cfg.freeze_after_global:
            self.wait -= 1
        self.ticks += 1
        return [i for i, (a, b) in enumerate(zip(before, self.densities)) if a != b]

    def _event(self, time: float, kind: str, client: int | None, old: float, new: float) -> None:
        self.events.append(
            {"tick": self.ticks, "time": time, "kind": kind, "client": client, "old": old, "new": new}
        )
        log.info(
            "GMR tick %d: %s%s %.4g -> %.4g",
            self.ticks,
            kind,
            "" if client is None else f" {client}",
            old,
            new,
        )

    def _gmr(self, time: float, global_score: float, client_scores: list[float] | None) -> None:
        cfg = self.cfg
        glob = self.monitors[0]
        # Nothing left to restore: wait longer before declaring the final stagnation.
        if not cfg.recover or fully_restored(self.rho_min):
            glob.patience = min(5 * cfg.patience, 50)

        if cfg.trigger in ("time", "mixed"):
            self._time_schedule(time)
            if cfg.trigger == "time":
                return

        # A client score of None means "not re-measured since the last tick" (clean semantics, B13): its
        # monitor does not move. As released, stale scores are passed again and count as no improvement.
        scores = [global_score] + (
            [None if s is None else float(s) for s in client_scores] if cfg.client_triggers else []
        )
        exhausted = [False if s is None else m.observe(s) for m, s in zip(self.monitors, scores)]

        # begin_save: the first P counted global stagnations only open the gate (released I/O guard).
        if not self.begin_save and glob.counter >= cfg.patience:
            self.begin_save = True
            glob.counter = 0
            exhausted[0] = False

        if exhausted[0] and self.begin_save:
            if cfg.recover and not fully_restored(self.rho_min):
                old = self.rho_min
                self.rho_min = self.next_density(old)
                self.wait = glob.patience
                for m in self.monitors:
                    m.best = None  # counters are not reset here, but the next observe() zeroes them
                self._event(time, "global", None, old, self.rho_min)
            else:
                self.stop_requested = True

        if cfg.recover and cfg.client_triggers and (self.begin_save or not cfg.gate_clients_on_begin_save):
            for i in range(self.num_clients):
                if self.cooldown[i] > 0 or not exhausted[i + 1]:
                    continue
                old = self.densities[i]
                self.densities[i] = self.next_density(old)
                self.cooldown[i] = max(1, 2 * cfg.patience)
                glob.best = None
                self.monitors[i + 1].best = None
                self._event(time, "client", i, old, self.densities[i])

        self._apply_floor(time, reset_monitors=cfg.client_triggers)

    def _apply_floor(self, time: float, reset_monitors: bool) -> None:
        for i in range(self.num_clients):
            if self.densities[i] < self.rho_min:
                old = self.densities[i]
                self.densities[i] = self.rho_min
                if reset_monitors:
                    # The released code sets best to -1 (below any accuracy); -inf says the same for
                    # any score: the next distinct score counts as an improvement.
                    for m in (self.monitors[0], self.monitors[i + 1]):
                        m.counter = 0
                        m.best = -math.inf
                self._event(time, "floor", i, old, self.rho_min)

    def _time_schedule(self, time: float) -> None:
        cfg = self.cfg
        if not cfg.recover or cfg.time_total <= 0:
            return
        progress = max(0.0, min(1.0, time / cfg.time_total))
        steps = 0
        while (
            self.time_cursor < len(cfg.time_points)
            and progress + _TIME_EPS >= cfg.time_points[self.time_cursor]
        ):
            self.time_cursor += 1
            steps += 1
        old = self.rho_min
        for _ in range(steps):
            if self.time_stage < len(cfg.time_ladder) - 1:
                self.time_stage += 1
                target = cfg.time_ladder[self.time_stage]
            else:
                target = 1.0
            target = min(1.0, max(self.rho_min, target))
            if target > self.rho_min + _TIME_EPS:
                self.rho_min = target
        if self.rho_min == old:
            return
        self._event(time, "time", None, old, self.rho_min)
        self._apply_floor(time, reset_monitors=False)
        self.wait = max(self.wait, cfg.patience)
        for m in self.monitors:
            m.counter = 0
            m.best = None

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "densities": list(self.densities),
            "rho_min": self.rho_min,
            "wait": self.wait,
            "cooldown": list(self.cooldown),
            "begin_save": self.begin_save,
            "stop_requested": self.stop_requested,
            "ticks": self.ticks,
            "time_cursor": self.time_cursor,
            "time_stage": self.time_stage,
            "monitors": [m.state_dict() for m in self.monitors],
            "events": [dict(e) for e in self.events],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["densities"]) != self.num_clients or len(state["monitors"]) != len(self.monitors):
            raise ValueError("restoration state does not match this configuration")
        self.densities = [float(d) for d in state["densities"]]
        self.rho_min = float(state["rho_min"])
        self.wait = int(state["wait"])
        self.cooldown = [int(c) for c in state["cooldown"]]
        self.begin_save = bool(state["begin_save"])
        self.stop_requested = bool(state["stop_requested"])
        self.ticks = int(state["ticks"])
        self.time_cursor = int(state["time_cursor"])
        self.time_stage = int(state["time_stage"])
        for m, s in zip(self.monitors, state["monitors"]):
            m.load_state_dict(s)
        self.events = [dict(e) for e in state["events"]]
