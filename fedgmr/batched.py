"""Batched local training: the clients of one iteration that share a model shape train together.

``Trainer.train`` (``fedgmr.training``) runs one client's K local steps on one shared working model. Clients
of one iteration are independent, so they can run together. :class:`GroupTrainer` takes a list of
:class:`Job` (the arguments of one ``Trainer.train`` call each) and returns the uploads, with the meaning of
``Trainer.train`` kept for every client: forward on w ⊙ m, momentum, weight decay, ``remask`` (masked
coordinates and their momentum exactly zero after every step), the no-remask drift path (B6), BatchNorm
running statistics per client, per-client dropout seeded by the job's own ``seed``, any loss.

Two batched backends (``backend="auto"`` picks by device, :func:`default_backend`):

* ``threads`` (CPU, opt-in): long-lived worker threads, one intra-op thread each, every worker with its own
  replica of the model (``Trainer`` on its own flat vector). Each job runs the unchanged ``Trainer.train``
  code on a replica; torch releases the GIL inside kernels, so W workers train W clients at once. On the
  bare local steps of small models this beat intra-op threading (one client on W threads, the sequential
  path) a little, but inside the whole engine it lost on the 2-core machine measured (see
  :func:`default_backend`). Results do not depend on which worker runs which job.
* ``vmap`` (GPU): one forward and one backward per local step over all clients of a group, with
  ``torch.func.functional_call`` + ``torch.func.vmap`` over stacked weights ``[C, ...]`` (stored so that each
  tensor's C copies are contiguous), stacked masks, momentum and batches ``[C, B, ...]``. The backward is
  ordinary autograd of the sum of the per-client losses (clients share no weights, so each client's
  gradient is its own loss's gradient), and the SGD update is ``Trainer.train``'s, on the stacked tensors.
  Jobs must agree on what the update does (``remask``, momentum present, ``lr``, ``model_attrs``) and on
  their batch shapes to share a group; the rest form further groups.
* ``sequential``: ``Trainer.train`` per job on the caller's trainer (the reference; also the fallback).

Dropout: ``nn.Dropout`` modules of the replicas are replaced by :class:`SeededDropout`, which draws its
noise exactly as ATen's CPU dropout does (``empty_like(x).bernoulli_(1 - p).div_(1 - p)``, then ``x *
noise``), from a generator seeded with the job's ``seed`` instead of torch's global generator. On CPU the
noise is therefore the very noise of the sequential path (``Trainer.train`` seeds the global generator
with the same ``seed``); on CUDA, where ATen uses a fused Philox kernel, the noise has the same law but
other values. Either way a client's dropout depends only on its own seed, never on the group it trained
in. Training leaves torch's global RNG state as it found it.

Float results equal the sequential path's up to reduction order: batched kernels (grouped convolutions,
batched matmuls) and a different number of intra-op threads sum in another order, so uploads differ from
``Trainer.train``'s by a few float32 ulps per step (``tests/fedgmr/test_batched.py`` states the bound).
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from fedgmr.flat import FlatLayout, as_float, flatten_module
from fedgmr.training import Trainer

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "GroupTrainer", "Job", "SeededDropout", "default_backend", "train_group"]


@dataclass
class Job:
    """One client's local training: the arguments of one ``Trainer.train`` call.

    Attributes:
        start: flat weights the client starts from (may be unmasked; the mask is applied on copy-in).
        mask: bool flat mask (True = active) or None for a dense model.
        momentum_buf: the client's flat momentum buffer, updated in place, or None.
        batches: the K batches ``(inputs, targets)``; materialised by the caller's thread.
        lr: learning rate.
        remask: keep masked coordinates and their momentum exactly zero after every step.
        seed: seeds this client's dropout.
        out: optional flat tensor to write the upload into.
        model_attrs: model attributes to set for this job (e.g. ``{"scaler": 0.5}``, the HeteroFL scaler).
        gates: released bias gating (``fedgmr.bias_gating``): (bias name, bool gate per output unit);
            a gated bias keeps its value but neither emits nor receives a gradient.
    """

    start: torch.Tensor
    mask: torch.Tensor | None
    momentum_buf: torch.Tensor | None
    batches: Iterable
    lr: float
    remask: bool
    seed: int
    out: torch.Tensor | None = None
    model_attrs: dict[str, Any] = field(default_factory=dict)
    gates: list | None = None

    def trainer_kwargs(self) -> dict[str, Any]:
        """The job as the keyword arguments of ``Trainer.train`` (the sequential path)."""
        return dict(
            start=self.start,
            mask=self.mask,
            momentum_buf=self.momentum_buf,
            batches=self.batches,
            lr=self.lr,
            remask=self.remask,
            seed=self.seed,
            out=self.out,
            gates=self.gates,
        )


# ---------------------------------------------------------------------------------------------
# Dropout with a per-client generator
# ---------------------------------------------------------------------------------------------


class SeededDropout(nn.Module):
    """``nn.Dropout`` whose noise comes from ``self.generator`` (or ``self.noise_fn``), not the global RNG.

    The draw reproduces ATen's CPU dropout (``_dropout_impl``): ``noise = empty_like(x).bernoulli_(1 - p)``,
    ``noise.div_(1 - p)``, ``x * noise``; with the same seed the same noise comes out.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None
        # Set by the vmap backend: returns the noise for a (batched) input.
        self.noise_fn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        if self.noise_fn is not None:
            return x * self.noise_fn(x, self.p)
        noise = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator).div_(1.0 - self.p)
        return x * noise


def _swap_dropout(model: nn.Module) -> list[SeededDropout]:
    """Replace every ``nn.Dropout`` of ``model`` by a :class:`SeededDropout`; return them in module order."""
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                new = SeededDropout(child.p)
                setattr(parent, name, new)
                swapped.append(new)
    return swapped


def _has_other_randomness(model: nn.Module) -> list[str]:
    """Random modules that :func:`_swap_dropout` does not handle (they would draw from the global RNG)."""
    random_types = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
    return [n for n, m in model.named_modules() if isinstance(m, random_types)]


class _Replica:
    """A private copy of the caller's model, on its own flat vector, with seeded dropout."""

    def __init__(self, trainer: Trainer):
        model = copy.deepcopy(trainer.model)
        self.dropouts = _swap_dropout(model)
        prunable = [s.name for s in trainer.layout.layers]
        layout, work, _ = flatten_module(model, prunable, trainer.work.device)
        _check_same_layout(trainer.layout, layout)
        self.model = model
        self.trainer = Trainer(model, layout, work, trainer.loss, trainer.momentum, trainer.weight_decay)

    def run(self, job: Job) -> torch.Tensor:
        for k, v in job.model_attrs.items():
            setattr(self.model, k, v)
        gen = None
        if self.dropouts:
            gen = torch.Generator(device=self.trainer.work.device).manual_seed(job.seed)
        for d in self.dropouts:
            d.generator = gen
        return self.trainer.train(**job.trainer_kwargs())


def _check_same_layout(a: FlatLayout, b: FlatLayout) -> None:
    sa = [(s.name, s.start, s.shape, s.is_buffer) for s in a.segments]
    sb = [(s.name, s.start, s.shape, s.is_buffer) for s in b.segments]
    if sa != sb:
        raise RuntimeError("model replica has another flat layout than the original")


# ---------------------------------------------------------------------------------------------
# Backend: long-lived 1-thread workers
# ---------------------------------------------------------------------------------------------


class _ThreadWorkers:
    """W long-lived threads with one intra-op thread each; worker i trains on replica i."""

    def __init__(self, trainer: Trainer, workers: int):
        self.replicas = [_Replica(trainer) for _ in range(workers)]
        self.inbox: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(workers)]
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        ready = threading.Barrier(workers + 1)
        # set_num_threads(1) in a worker also lowers the process-wide default that fresh threads start
        # from; the caller's own setting is put back once every worker has taken its own.
        threads_before = torch.get_num_threads()
        # The threads get what they need, not ``self``: the pool can be collected, which stops them.
        self.threads = [
            threading.Thread(
                target=_worker_loop,
                args=(self.replicas[i], self.inbox[i], self.results, ready),
                daemon=True,
                name=f"fedgmr-train-{i}",
            )
            for i in range(workers)
        ]
        for t in self.threads:
            t.start()
        ready.wait()
        torch.set_num_threads(threads_before)
        # Stop the threads when this object is collected (they hold no reference to it).
        weakref.finalize(self, _stop_workers, list(self.inbox), list(self.threads))

    def run(self, jobs: Sequence[Job]) -> list[torch.Tensor]:
        counter, lock = iter(range(len(jobs))), threading.Lock()
        for box in self.inbox:
            box.put((jobs, counter, lock))
        out: list[torch.Tensor | None] = [None] * len(jobs)
        errors = []
        finished = 0
        while finished < len(self.inbox):
            k, res, err = self.results.get()
            if k is None:
                finished += 1
            elif err is not None:
                errors.append(err)
            else:
                out[k] = res
        if errors:
            raise errors[0]
        return out  # type: ignore[return-value]


def _worker_loop(
    replica: _Replica, inbox: queue.SimpleQueue, results: queue.SimpleQueue, ready: threading.Barrier
) -> None:
    torch.set_num_threads(1)
    ready.wait()
    while True:
        task = inbox.get()
        if task is None:
            return
        jobs, counter, lock = task
        # Jobs are handed out one at a time from a shared counter: a free worker takes the next one.
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                break
            try:
                results.put((k, replica.run(jobs[k]), None))
            except BaseException as e:  # reported to the caller, who re-raises
                results.put((k, None, e))
        results.put((None, None, None))


def _stop_workers(inboxes: list[queue.SimpleQueue], threads: list[threading.Thread]) -> None:
    """Stop and join the workers; also runs at interpreter exit, so no thread outlives torch."""
    for box in inboxes:
        box.put(None)
    for t in threads:
        if t is not threading.current_thread():
            t.join(timeout=60)


# ---------------------------------------------------------------------------------------------
# Backend: vmap over stacked clients
# ---------------------------------------------------------------------------------------------


class _NoiseSource:
    """Per-client dropout noise inside vmap: each client's generator draws its own noise, in call order.

    Inside ``vmap`` the input is batched; the noise of all C clients is drawn outside the batching (on
    plain tensors, one generator per client, shape = one client's input) and then picked per client with
    the batched client index, so every client sees exactly what its own generator gives.
    """

    def __init__(self) -> None:
        self.generators: list[torch.Generator] = []
        self.client: torch.Tensor | None = None  # batched client index, set inside the vmapped function

    def __call__(self, x: torch.Tensor, p: float) -> torch.Tensor:
        noise = torch.stack(
            [
                torch.empty(x.shape, dtype=x.dtype, device=x.device)
                .bernoulli_(1.0 - p, generator=g)
                .div_(1.0 - p)
                for g in self.generators
            ]
        )
        return noise[self.client]


class _VmapGroups:
    """Trains groups of compatible jobs with one batched forward/backward per local step."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        model = copy.deepcopy(trainer.model)
        dropouts = _swap_dropout(model)
        self.noise = _NoiseSource()
        for d in dropouts:
            d.noise_fn = self.noise
        self.model = model
        self.has_dropout = bool(dropouts)
        layout = trainer.layout
        self.layout = layout
        self.segments = list(layout.segments)
        self.param_idx = [k for k, s in enumerate(self.segments) if not s.is_buffer]
        self.buffer_idx = [k for k, s in enumerate(self.segments) if s.is_buffer]

    # -- stacked storage: tensor k of all C clients is the contiguous block [C, *shape] ------------
    def _stack(self, c: int, device, dtype) -> tuple[torch.Tensor, list[torch.Tensor]]:
        store = torch.empty(c * self.layout.numel, device=device, dtype=dtype)
        views = [store[c * s.start : c * s.stop].view(c, *s.shape) for s in self.segments]
        return store, views

    def _load(self, views: list[torch.Tensor], flats: Sequence[torch.Tensor], idx: Sequence[int]) -> None:
        for k in idx:
            s = self.segments[k]
            for c, f in enumerate(flats):
                views[k][c].copy_(f[s.start : s.stop].view(s.shape))

    def _save(self, views: list[torch.Tensor], flats: Sequence[torch.Tensor], idx: Sequence[int]) -> None:
        for k in idx:
            s = self.segments[k]
            for c, f in enumerate(flats):
                f[s.start : s.stop].view(s.shape).copy_(views[k][c])

    def run(self, jobs: Sequence[Job], batches: Sequence[list]) -> list[torch.Tensor]:
        """Train one compatible group (same update rule, same batch shapes)."""
        tr = self.trainer
        c = len(jobs)
        device, dtype = tr.work.device, tr.work.dtype
        has_mask = any(j.mask is not None for j in jobs)
        remask = jobs[0].remask
        lr = jobs[0].lr
        momentum = tr.momentum if jobs[0].momentum_buf is not None else 0.0
        wd = tr.weight_decay
        extra = bool(momentum or wd)
        drift = has_mask and not remask and extra
        mask_step = has_mask and (remask or not extra)
        for k, v in jobs[0].model_attrs.items():
            setattr(self.model, k, v)

        all_idx = range(len(self.segments))
        _, w = self._stack(c, device, dtype)
        self._load(w, [j.start for j in jobs], all_idx)
        m = None
        if has_mask:
            ones = torch.ones(self.layout.numel, device=device, dtype=dtype)
            _, m = self._stack(c, device, dtype)
            self._load(m, [ones if j.mask is None else as_float(j.mask, dtype) for j in jobs], all_idx)
            torch._foreach_mul_(w, m)  # the server sends global values under the mask (§4.4)
        params = [w[k] for k in self.param_idx]
        for p in params:
            p.requires_grad_(True)
        masks = None if m is None else [m[k] for k in self.param_idx]
        bufs = None
        if momentum:
            _, mom = self._stack(c, device, dtype)
            self._load(mom, [j.momentum_buf for j in jobs], self.param_idx)
            bufs = [mom[k] for k in self.param_idx]
        keep_out = None if not drift else [1.0 - t for t in m]

        names = [s.name for s in self.segments]
        pnames = [names[k] for k in self.param_idx]
        bnames = [names[k] for k in self.buffer_idx]
        noise = self.noise
        model = self.model
        # Released bias gating: the forward multiplies a gated bias by its gate, so a silent unit's bias
        # keeps its value and gets no gradient, as in Trainer.train. Jobs without gates use ones.
        gnames = sorted({name for j in jobs for name, _ in (j.gates or [])})
        gv = []
        for name in gnames:
            shape = self.layout.by_name[name].shape
            per_job = [dict(j.gates or []).get(name) for j in jobs]
            gv.append(
                torch.stack(
                    [
                        torch.ones(shape, device=device, dtype=dtype) if g is None else as_float(g, dtype)
                        for g in per_job
                    ]
                )
            )

        def forward(pv, bv, gates, client, x):
            noise.client = client
            state = dict(zip(pnames, pv))
            state.update(zip(bnames, bv))
            for name, g in zip(gnames, gates):
                state[name] = state[name] * g
            return functional_call(model, state, (x,))

        batched = vmap(forward, randomness="same" if self.has_dropout else "error")
        clients = torch.arange(c, device=device)
        if self.has_dropout:
            noise.generators = [torch.Generator(device=device).manual_seed(j.seed) for j in jobs]
        model.train()
        steps = len(batches[0])
        for t in range(steps):
            x = torch.stack([b[t][0] for b in batches])
            y = [b[t][1] for b in batches]
            if drift:
                # As Trainer.train: set the drifting masked values aside so the forward sees w ⊙ m.
                with torch.no_grad():
                    leak = torch._foreach_mul(w, keep_out)
                    torch._foreach_mul_(w, m)
            for p in params:
                p.grad = None
            logits = batched(params, [w[k] for k in self.buffer_idx], gv, clients, x)
            # Each client's own loss; their sum's gradient w.r.t. client c's weights is client c's gradient.
            loss = sum(tr.loss(logits[i], y[i]) for i in range(c))
            loss.backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            with torch.no_grad():
                if drift:
                    torch._foreach_add_(w, leak)
                    torch._foreach_mul_(grads, masks)
                if wd:
                    torch._foreach_add_(grads, params, alpha=wd)
                step = grads
                if momentum:
                    torch._foreach_mul_(bufs, momentum)
                    torch._foreach_add_(bufs, grads)
                    step = bufs
                if mask_step and step is grads:
                    torch._foreach_addcmul_(params, grads, masks, value=-lr)
                else:
                    if mask_step:
                        torch._foreach_mul_(step, masks)
                    torch._foreach_add_(params, step, alpha=-lr)
        noise.generators, noise.client = [], None
        with torch.no_grad():
            for p in params:
                p.grad = None
                p.requires_grad_(False)
            outs = [
                j.out if j.out is not None else torch.empty(self.layout.numel, device=device, dtype=dtype)
                for j in jobs
            ]
            self._save(w, outs, all_idx)
            if momentum:
                self._save(mom, [j.momentum_buf for j in jobs], self.param_idx)
        return outs


def _group_key(job: Job, batches: list) -> tuple:
    shapes = tuple((tuple(x.shape), tuple(y.shape)) for x, y in batches)
    attrs = tuple(sorted(job.model_attrs.items()))
    return (job.remask, job.momentum_buf is None, float(job.lr), attrs, shapes)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------

BACKENDS = ("threads", "vmap", "sequential")


def default_backend(device: torch.device | str) -> str:
    """``vmap`` on accelerators; ``sequential`` on the CPU.

    On the CPU the ``threads`` backend lost to one client at a time in the whole engine on the only CPU
    machine measured (2 cores; ``python benchmarks/methods.py --methods fedgmr fedavg fedasync --backends
    auto,threads``, ``benchmarks/results/cpu_backends.csv``), although on the bare local steps alone two
    1-thread workers were a little faster (``benchmarks/batched_step.py``). Why is not established; see the
    README's "Speed and memory" section. ``threads`` stays available (``run.batch_backend: threads``) for
    machines with more cores, where it may pay: measure there before relying on it.
    """
    return "sequential" if torch.device(device).type == "cpu" else "vmap"


class GroupTrainer:
    """Trains lists of jobs for one model shape (one :class:`fedgmr.training.Trainer`).

    Args:
        trainer: the model's trainer; its model, layout, loss, momentum and weight decay are used.
            Replicas are copies: the caller's model and working vector are not touched (except by the
            ``sequential`` backend, which is ``trainer.train`` itself).
        backend: ``"auto"`` (see :func:`default_backend`), or one of :data:`BACKENDS`.
        workers: threads of the ``threads`` backend (default: ``torch.get_num_threads()``).
        max_group: most clients stacked in one vmap pass (memory: about 4 flat vectors per client);
            larger groups are split. None: no limit.
    """

    def __init__(
        self,
        trainer: Trainer,
        backend: str = "auto",
        workers: int | None = None,
        max_group: int | None = None,
    ):
        if backend == "auto":
            backend = default_backend(trainer.work.device)
        if backend not in BACKENDS:
            raise ValueError(f"unknown batched-training backend {backend!r}; known: {BACKENDS}")
        self.trainer = trainer
        other = _has_other_randomness(trainer.model)
        if backend != "sequential" and other:
            log.warning("batched training falls back to sequential: unsupported random modules %s", other)
            backend = "sequential"
        if backend == "threads" and trainer.work.device.type != "cpu":
            log.warning("threads backend is for CPU; using vmap on %s", trainer.work.device)
            backend = "vmap"
        self.backend = backend
        self.workers = max(1, workers or torch.get_num_threads())
        self.max_group = max_group
        self._threads: _ThreadWorkers | None = None
        self._vmap: _VmapGroups | None = None
        self._vmap_failed: str | None = None

    def close(self) -> None:
        """Stop the worker threads (they also stop when this object is collected)."""
        if self._threads is not None:
            _stop_workers(self._threads.inbox, self._threads.threads)
            self._threads = None

    def train(self, jobs: Sequence[Job]) -> list[torch.Tensor]:
        """Run every job's local steps; return the uploads in job order (``job.out`` when given).

        Each job's momentum buffer is updated in place. Torch's global RNG state is left unchanged.
        """
        if not jobs:
            return []
        # Batches are drawn here, in the caller's thread and job order (batchers and streams are not
        # thread-safe, and their order must not depend on scheduling).
        batches = [list(j.batches) for j in jobs]
        jobs = [_with_batches(j, b) for j, b in zip(jobs, batches)]
        with _keep_global_rng(self.trainer.work.device):
            if self.backend == "sequential" or len(jobs) == 1:
                return [self._sequential(j) for j in jobs]
            if self.backend == "threads":
                return self._threads_run(jobs)
            return self._vmap_run(jobs, batches)

    def _sequential(self, job: Job) -> torch.Tensor:
        for k, v in job.model_attrs.items():
            setattr(self.trainer.model, k, v)
        return self.trainer.train(**job.trainer_kwargs())

    def _threads_run(self, jobs: list[Job]) -> list[torch.Tensor]:
        if self.workers == 1:
            return [self._sequential(j) for j in jobs]
        if self._threads is None:
            self._threads = _ThreadWorkers(self.trainer, self.workers)
        return self._threads.run(jobs)

    def _vmap_run(self, jobs: list[Job], batches: list[list]) -> list[torch.Tensor]:
        if self._vmap_failed is None and self._vmap is None:
            self._vmap = _VmapGroups(self.trainer)
        groups: dict[tuple, list[int]] = {}
        for i, (j, b) in enumerate(zip(jobs, batches)):
            groups.setdefault(_group_key(j, b), []).append(i)
        size = self.max_group or len(jobs)
        chunks = [idx[s : s + size] for idx in groups.values() for s in range(0, len(idx), size)]
        out: list[torch.Tensor | None] = [None] * len(jobs)
        for idx in chunks:
            if len(idx) == 1 or self._vmap_failed is not None:
                for i in idx:
                    out[i] = self._sequential(jobs[i])
                continue
            try:
                res = self._vmap.run([jobs[i] for i in idx], [batches[i] for i in idx])
            except (RuntimeError, NotImplementedError) as e:
                # A model vmap cannot handle: train sequentially from now on, and say why. The vmap pass
                # writes the jobs' outputs and momentum only after its last step, so the retry starts
                # from untouched inputs.
                self._vmap_failed = f"{type(e).__name__}: {e}"
                log.warning("vmap batched training failed, falling back to sequential: %s", self._vmap_failed)
                res = [self._sequential(jobs[i]) for i in idx]
            for i, r in zip(idx, res):
                out[i] = r
        return out  # type: ignore[return-value]


def _keep_global_rng(device: torch.device):
    """Restore torch's global RNG state afterwards (``Trainer.train`` reseeds it for dropout)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.random.fork_rng(devices=[index], device_type="cuda")
    return torch.random.fork_rng(devices=[])


def _with_batches(job: Job, batches: list) -> Job:
    return Job(
        job.start,
        job.mask,
        job.momentum_buf,
        batches,
        job.lr,
        job.remask,
        job.seed,
        job.out,
        job.model_attrs,
        job.gates,
    )


_GROUP_TRAINERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def train_group(trainer: Trainer, jobs: Sequence[Job], backend: str = "auto") -> list[torch.Tensor]:
    """Train ``jobs`` on copies of ``trainer``'s model, batched; a :class:`GroupTrainer` per trainer is kept."""
    gt = _GROUP_TRAINERS.get(trainer)
    if gt is None or gt.backend != (default_backend(trainer.work.device) if backend == "auto" else backend):
        gt = GroupTrainer(trainer, backend)
        _GROUP_TRAINERS[trainer] = gt
    return gt.train(jobs)
