"""The method-agnostic event loop (reference §3.4): one iteration = one server round.

Per iteration:
  A. free clients train K local steps on the sub-model they received;
  B/C. uploads and the deadline advance the virtual clock (``fedgmr.network``);
  D. the server weighs arrivals by staleness and merges them; at evaluation ticks it evaluates the
     server and buffer-average models, runs restoration (GMR) and rebuilds the masks;
  E/F. downloads of the current sub-models, some of which carry over to later rounds.

All model state is flat tensors (``fedgmr.flat``); one working module trains every client. The state of
a run is exactly the attributes saved by ``state_dict``, so a killed run resumes bit-for-bit.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

import torch

from fedgmr.aggregation import AGGREGATORS, buffer_average
from fedgmr.batched import GroupTrainer, Job, default_backend
from fedgmr.bias_gating import apply_gates, gated_layers, unit_gates
from fedgmr.data import Batcher, IndexStream, load_dataset
from fedgmr.evaluation import Evaluator
from fedgmr.flat import as_float, flatten_module
from fedgmr.masks import NestedMasks
from fedgmr.methods.registry import METHODS
from fedgmr.models import build_model
from fedgmr.network import Network, NetworkSpec
from fedgmr.population import client_tiers, standard_clients
from fedgmr.profiles import PROFILES
from fedgmr.restoration import Restoration, RestorationConfig, fully_restored
from fedgmr.seeds import Purpose, derive
from fedgmr.staleness import Staleness
from fedgmr.state import RunState, delegate_state
from fedgmr.training import Trainer, lr_at

log = logging.getLogger(__name__)


@delegate_state
class Simulation:
    """One run's wiring (data, model, clock, staleness, restoration, method) and its event loop.

    The mutable state is ``self.state`` (:class:`fedgmr.state.RunState`); its fields read as plain
    attributes (``sim.global_w``, ``sim.densities``, ...).
    """

    def __init__(self, cfg: dict, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.method = METHODS[cfg["method"]].for_run()  # per-run state lives on this copy
        self.profile = PROFILES[cfg["dataset"]["name"]]
        self.seed = cfg["seed"]
        tr, self.sched = cfg["training"], cfg["schedule"]
        self.local_steps, self.batch_size = tr["local_steps"], tr["batch_size"]

        self.data = load_dataset(cfg, self.profile.augment)
        self.batcher = Batcher(self.data, self.device)
        n = cfg["clients"]["num"]
        self.n = n

        torch.manual_seed(derive(self.seed, Purpose.MODEL_INIT))
        m = cfg["model"]
        kwargs = dict(width=m["width"], variant=m["variant"])
        if m["norm"]:
            kwargs["norm"] = m["norm"]
        if self.data.task == "image":
            kwargs["num_classes"] = self.data.num_classes
        else:
            kwargs["vocab_size"] = self.data.vocab_size
            kwargs["seq_len"] = int(self.data.train_x.shape[1])
        self.model = build_model(m["name"], **kwargs)
        self.layout, self.work, _ = flatten_module(self.model, self.model.prunable, self.device)
        self.layout_prunable = self.layout.prunable.to(self.device)
        self.trainer = Trainer(
            self.model, self.layout, self.work, tr["loss"], tr["momentum"], tr["weight_decay"]
        )
        # Clients of one iteration train together unless run.batch_clients is false or the backend is
        # sequential (the CPU default): then one after another on this trainer, the reference path
        # the goldens freeze.
        backend = cfg["run"]["batch_backend"]
        if backend == "auto":
            backend = default_backend(self.device)
        batch = cfg["run"]["batch_clients"] and backend != "sequential"
        self.group = GroupTrainer(self.trainer, backend) if batch else None
        # Several models on the same data are evaluated in one stacked pass where clients train that way.
        self.evaluator = Evaluator(
            self.model,
            self.work,
            self.data,
            self.batcher,
            cfg["evaluation"]["batch_size"],
            tr["loss"],
            layout=self.layout,
            stacked=self.group is not None and self.group.backend == "vmap",
        )
        # Released bp models silence the biases of output units without an active weight (§4.4).
        gate = self.switch("bias_gating") and m["variant"] == "bp"
        self.gated = gated_layers(self.layout) if gate else []

        level = cfg["clients"]["heterogeneity"]
        self.tiers = client_tiers(n, level, cfg["clients"]["tiers"])
        self.state = RunState.initial(
            self.work.clone(),
            n,
            self.method.initial_densities(cfg, self.tiers),
            tr["lr"],
            momentum=tr["momentum"] > 0,
            ims_lag=self.switch("ims_lag"),
        )
        net = cfg["network"]
        spec = NetworkSpec(
            model_size_mb=net["model_size_mb"],
            tiers=self.tiers,
            standard=standard_clients(n, level, cfg["switches"]["standard_clients"]),
            sync=self.method.sync,
            ims=self.method.ims,
            compute_time=net["compute_time"],
            server_up=net["server_up"],
            server_down=net["server_down"],
            client_down=net["client_down"],
            client_up=net["client_up"],
            client_sigma=net["client_sigma"],
            server_sigma=net["server_sigma"],
            draws=net["draws"],
            phantom_arrivals=self.switch("phantom_arrivals"),
            released_startup=self.switch("released_startup"),
            # The released code draws speeds from its own RandomState(seed): same seed, same clock trace.
            seed=self.seed,
        )
        self.net = Network(spec)
        self.staleness = Staleness(n, kind=cfg["staleness"]["kind"], a=cfg["staleness"]["a"])
        rs = cfg["restoration"]
        self.restoration = Restoration(
            RestorationConfig(
                recover=self.method.recover,
                client_triggers=self.method.client_triggers,
                patience=rs["patience"],
                trigger=rs["trigger"],
                step_mode=rs["step_mode"],
                step=rs["step"],
                time_total=rs["time_total"],
                # The released ladder is the set of tier densities (§5).
                ladder=tuple(sorted({float(t) for t in cfg["clients"]["tiers"]})),
                time_points=tuple(rs["time_points"]),
                time_ladder=tuple(rs["time_ladder"]),
                **self.method.restoration_options(cfg),
            ),
            list(self.densities),
            rs["min_density"],
        )

        self.masks: NestedMasks | None = None
        if not self.switch("dense_round0"):
            self.method.rebuild_masks(self)  # clean: masks exist before round 0 (B12)
        self.streams = [IndexStream(p, self.seed, i) for i, p in enumerate(self.data.clients)]
        self.finished = False
        # Local SGD steps actually run, by the density of the model that ran them (1.0: the full-size
        # model, masked or not; < 1: a width-sliced sub-model), for benchmarks' per-method floors.
        self.steps_by_density: Counter[float] = Counter()

    @property
    def counters(self) -> dict:
        """Work actually done, for benchmarks: local SGD steps (in all and by model density) and
        evaluation passes and samples."""
        ev = self.evaluator
        return {
            "steps": sum(self.steps_by_density.values()),
            "steps_by_density": dict(sorted(self.steps_by_density.items())),
            "eval_passes": ev.passes,
            "eval_samples": ev.samples,
        }

    def count_steps(self, density: float, steps: int = 1) -> None:
        """Record ``steps`` local SGD steps on a model of ``density`` (1.0 = full size)."""
        self.steps_by_density[min(1.0, float(density))] += steps

    # ---- small helpers used by methods ----------------------------------------------------------
    def switch(self, name: str):
        return self.cfg["switches"][name]

    def rebuild_magnitude_masks(self, use_coefficients: bool) -> None:
        coeffs = None
        if use_coefficients:
            p = self.profile
            coeffs = [
                p.comm_coefficient + (p.comp_coefficients[i] if i < len(p.comp_coefficients) else 0.0)
                for i in range(len(self.layout.layers))
            ]
            if not any(coeffs):
                coeffs = None  # all-zero coefficients mean "unweighted"
        self.masks = NestedMasks.build(
            self.global_w.abs(),
            self.layout,
            coeffs,
            normalize_by_layer_mean=self.profile.normalize_by_layer_mean,
        )

    # ---- client work ---------------------------------------------------------------------------
    def make_job(self, client: int, start: torch.Tensor, mask: torch.Tensor | None) -> Job:
        """One client's local training as a pure job: start weights, mask, momentum, LR, its batches and
        seeds. Training it changes nothing but the job's momentum buffer and output."""
        tn = self.net.train_number[client]
        gen = torch.Generator().manual_seed(derive(self.seed, Purpose.BATCH_AUGMENT, client, tn))
        stream = self.streams[client]
        # Drawn lazily in job order by whoever trains the job (each client has its own stream and
        # generator, so the batches do not depend on that order).
        batches = (
            self.batcher.train_batch(stream.next(self.batch_size), gen) for _ in range(self.local_steps)
        )
        self.count_steps(1.0, self.local_steps)
        self.client_masks[client] = mask
        gates = None
        if self.gated and mask is not None:
            gates = [(g.bias.name, u) for g, u in zip(self.gated, unit_gates(mask, self.gated))]
        return Job(
            start=start,
            mask=mask,
            momentum_buf=self.momentum[client],
            batches=batches,
            lr=self.client_lr[client],
            remask=(not self.switch("value_coverage")) or self.profile.remask_every_step,
            seed=derive(self.seed, Purpose.DROPOUT, client, tn),
            # The previous upload of this client was merged when it arrived; its buffer is free again.
            out=self.uploads[client],
            gates=gates,
        )

    def train_jobs(self, jobs: list[Job]) -> list[torch.Tensor]:
        """Train jobs together (``run.batch_clients``, ``fedgmr.batched``) or one after another."""
        if self.group is not None:
            return self.group.train(jobs)
        return [self.trainer.train(**job.trainer_kwargs()) for job in jobs]

    def train_locally(self, client: int, start: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """One client's K local steps, now (methods that train their clients themselves use it)."""
        return self.trainer.train(**self.make_job(client, start, mask).trainer_kwargs())

    # ---- evaluation ------------------------------------------------------------------------------
    def evaluate(self, weights: torch.Tensor, split: str = "test", client: int | None = None):
        """(accuracy, loss) of ``weights`` as the method's forward computes with them (FIARSE's released
        threshold forward, B3, transforms them first)."""
        return self.evaluator(self.method.eval_weights(self, weights), split, client)

    def evaluate_many(
        self, weights: list[torch.Tensor], split: str = "test", clients: list[int] | None = None
    ) -> list[tuple[float, float]]:
        """:meth:`evaluate` of several vectors, in one stacked pass where the evaluator allows it."""
        return self.evaluator.many([self.method.eval_weights(self, w) for w in weights], split, clients)

    # ---- the loop --------------------------------------------------------------------------------
    def finished_by_limits(self) -> bool:
        return self.net.time > self.sched["max_time"] or self.net.train_number[0] > self.sched["max_rounds"]

    def step(self) -> bool:
        """One loop iteration. Returns False when the run has reached its limits."""
        if self.finished_by_limits():
            self.finished = True
            return False
        m, S = self.method, self.cfg["network"]["model_size_mb"]
        trained = self.net.begin_iteration()
        r = self.net.round
        tick = r % self.sched["interval"] == 0 and r != self.last_tick_round
        m.on_round(self, r, tick)

        # A. local training: the clients' work as jobs, trained together where the method allows it
        jobs, owners = [], []
        for i in trained:
            start, mask = self.pending.pop(i, None) or m.client_start(self, i)
            job = m.make_job(self, i, start, mask)
            if job is None:  # the method trains this client itself
                self.uploads[i], self.coverage[i] = m.local_update(self, i, start, mask)
            else:
                jobs.append(job)
                owners.append((i, mask))
            self.upload_mb += S * self.densities[i]
        for (i, mask), upload in zip(owners, self.train_jobs(jobs)):
            self.uploads[i], self.coverage[i] = m.finish_job(self, i, upload, mask)

        # B/C. uploads and deadline
        arrivals = self.net.collect(self.densities)
        clients = [a.client for a in arrivals]
        # D. server: staleness, aggregation
        if arrivals:
            self.staleness.update(r, [(a.client, a.dispatch_round) for a in arrivals])
            for a in arrivals:
                self.last_staleness[a.client] = max(1, r - a.dispatch_round)
                self.arrived_since_tick[a.client] += 1
                self._receive(a.client)
            coeffs = self.staleness.arrival_coefficients(clients, self.switch("misindexed_staleness"))
            beta = self.staleness.beta(clients)
            cover = [
                self.coverage[i]
                if self.coverage[i] is not None
                else torch.ones_like(self.global_w, dtype=torch.bool)
                for i in clients
            ]
            self.global_w = AGGREGATORS[m.merge](
                self.global_w, [self.uploads[i] for i in clients], cover, coeffs, beta
            )
            self._client_scores(arrivals)
        if tick:
            if self.ims_dens is not None:
                self.ims_dens = self.prev_tick_dens
            self._tick(r)
            self.prev_tick_dens = list(self.densities)
        # E/F. downloads
        disp = self.net.dispatch(self.densities, self.ims_dens)
        if 0 in disp.load_now or 0 in disp.delivered:
            self.lr_steps += 1
        lr = lr_at(self.cfg["training"]["lr"], self.cfg["training"]["lr_schedule"], self.lr_steps)
        for i in disp.deferred:
            start, mask = m.client_start(self, i)
            # The model in flight is this round's. Held, not copied: the server never writes into a
            # global vector, every merge makes a new one (``fedgmr.aggregation``), so this one keeps
            # its values until the client loads it (tests/fedgmr/test_snapshots.py checks it).
            self.snapshots[i] = (start, mask)
            self.download_mb += S * self.densities[i]
        for i in disp.delivered:
            self.pending[i] = self.snapshots.pop(i)
            self.client_lr[i] = lr
        for i in disp.load_now:
            self.pending[i] = None  # the current sub-model: nothing changes before it trains
            self.client_lr[i] = lr
            self.download_mb += S * self.densities[i]
        return True

    def _receive(self, client: int) -> None:
        """The server now holds this client's upload (copied: the client's buffer is reused when it
        trains again while the server still averages the received model)."""
        if self.switch("phantom_arrivals"):
            return  # every trained model has arrived: the buffer is ``uploads`` itself
        up = self.uploads[client]
        if self.received[client] is None:
            self.received[client] = up.clone()
        else:
            self.received[client].copy_(up)

    def buffer(self) -> list[torch.Tensor | None]:
        """Each client's latest upload that the server has received (§6.6, B1)."""
        return self.uploads if self.switch("phantom_arrivals") else self.received

    def client_model(self, client: int) -> torch.Tensor:
        """The client's latest model as its own forward computes with it: through its mask and, on
        released bp models, with the biases of silent units gated (§4.4). Under B6 the upload carries
        drifted values outside the mask that the client's forward never sees."""
        up, mask = self.uploads[client], self.client_masks[client]
        if mask is None:
            return up
        w = up * as_float(mask, up.dtype)
        if self.gated:
            w = apply_gates(w, unit_gates(mask, self.gated), self.gated)
        return w

    def _client_scores(self, arrivals) -> None:
        """Per-client GMR scores when the client's training count hits the evaluation period (§5)."""
        if not self.method.client_triggers or not self.method.recover:
            return
        interval = self.sched["interval"]
        p_eval = 5 * interval if fully_restored(self.restoration.rho_min) else interval
        split = "test" if self.switch("gmr_signal") == "test" else "val"
        due = [a.client for a in arrivals if self.net.train_number[a.client] % p_eval == 1 % p_eval]
        if not due:
            return
        # Client models are built per evaluation group, so one-by-one evaluation holds one at a time.
        size = self.evaluator.group_size
        for s in range(0, len(due), size):
            part = due[s : s + size]
            for c, (acc, _) in zip(part, self.evaluate_many([self.client_model(c) for c in part], split, part)):
                self.client_scores[c] = acc
                self.score_fresh[c] = True

    def _tick(self, r: int) -> None:
        self.last_tick_round = r
        buf = self.buffer()
        have = [i for i in range(self.n) if buf[i] is not None]
        # The server model, and (before full restoration) the buffer average: the GMR signal (B14).
        models = [self.global_w]
        if have and not fully_restored(self.restoration.rho_min):
            coeffs = self.staleness.coefficients()
            models.append(buffer_average([buf[i] for i in have], [coeffs[i] for i in have]))
        (acc_s, loss_s), *avg = self.evaluate_many(models)
        acc_a = avg[0][0] if avg else acc_s
        signal = acc_a if self.switch("gmr_signal") == "test" else self.evaluate(models[-1], "val")[0]
        scores = None
        if self.method.client_triggers:
            if self.switch("stale_client_scores"):
                scores = list(self.client_scores)
            else:  # clean: a client's monitor only moves on a freshly measured score
                scores = [s if f else None for s, f in zip(self.client_scores, self.score_fresh)]
            self.score_fresh = [False] * self.n
        # The released log prints the densities and floor of this tick before GMR moves them (§3.8).
        density_logged, rho_min_logged = sum(self.densities) / self.n, self.restoration.rho_min
        self.restoration.on_tick(self.net.time, signal, scores)
        self.densities = list(self.restoration.densities)
        self.method.rebuild_masks(self)
        self.timing.append({"tick": self.tick_index, "wall_time_s": round(self.wall_elapsed, 3)})
        self.metrics.append(
            {
                "tick": self.tick_index,
                "round": r,
                "virtual_time": round(self.net.time, 6),
                "acc_server": acc_s,
                "acc_avg": acc_a,
                "acc": max(acc_s, acc_a),
                "loss_server": loss_s,
                "avg_density": density_logged,
                "rho_min": rho_min_logged,
                "upload_mb": round(self.upload_mb, 6),
                "download_mb": round(self.download_mb, 6),
            }
        )
        for i in range(self.n):
            self.client_rows.append(
                {
                    "tick": self.tick_index,
                    "client": i,
                    "tier": self.tiers[i],
                    "density": self.densities[i],
                    "staleness": self.last_staleness[i],
                    "trained": self.net.train_number[i],
                    "arrived": self.arrived_since_tick[i],
                    "acc_client": self.client_scores[i] if self.client_scores[i] >= 0 else math.nan,
                }
            )
        self.arrived_since_tick = [0] * self.n
        self.tick_index += 1

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The run state (``RunState``, field by field) and the state of every stateful component."""
        return {
            "state": self.state.to_dict(),
            "masks": None if self.masks is None else self.masks.state_dict(),
            "net": self.net.state_dict(),
            "staleness": self.staleness.state_dict(),
            "restoration": self.restoration.state_dict(),
            "streams": [st.state_dict() for st in self.streams],
        }

    def load_state_dict(self, s: dict) -> None:
        s = _to_device(s, self.device)  # checkpoints are read onto the CPU
        self.state = RunState.from_dict(s["state"])
        self.masks = None
        if s["masks"] is not None:
            self.masks = NestedMasks.from_state(s["masks"], self.layout, self.device)
        self.net.load_state_dict(s["net"])
        self.staleness.load_state_dict(s["staleness"])
        self.restoration.load_state_dict(s["restoration"])
        for st, sd in zip(self.streams, s["streams"]):
            st.load_state_dict(sd)


def _to_device(obj, device: torch.device):
    """Move every tensor inside nested dicts/lists/tuples to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def run(*args, **kwargs):
    """Kept for callers of the old location: the runner is ``fedgmr.runner.run``."""
    from fedgmr.runner import run as _run

    return _run(*args, **kwargs)
