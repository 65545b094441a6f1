"""Width-sliced sub-model training shared by HeteroFL, FedRolex and FjORD (reference §7.3-7.5).

HeteroFL (Diao et al., "HeteroFL: Computation and Communication Efficient Federated Learning for
Heterogeneous Clients", ICLR 2021) gives a client of density rho a *physically smaller* dense model: every
hidden layer keeps k(C, rho) of its C channels (``fedgmr.models.slicing``). FedRolex and FjORD reuse the same
machinery with other channel windows and width schedules.

How a client step runs here (no per-client model objects, design §5):

* one sub-model (module + flat layout + :class:`fedgmr.training.Trainer`) per distinct set of hidden widths,
  cached per simulation (not per client, not in the checkpoint: it is rebuilt from the config);
* a flat *index map* per (widths, window offset): position ``j`` of the sub-model's flat vector is position
  ``idx[j]`` of the full model's flat vector, so extraction is one gather ``global_w[idx]`` and the
  scatter-back one ``upload[idx] = trained`` into a zero-filled full-size vector (the client's last upload
  buffer with its slice zeroed), with coverage ``in_slice(idx)``, so that aggregation touches only the
  slice (``fedgmr.index_map``: strided copies of the same elements, 2.6-7x faster than ``index_select`` /
  ``index_copy_`` on the LEAF CNN's slices);
* momentum (ImageNet, StackOverflow) lives in the client's full-size buffer ``sim.momentum[client]`` and is
  gathered/scattered through the same map, so channels outside the window keep their last state;
* batches and seeds are exactly those of :meth:`fedgmr.simulation.Simulation.train_locally`, so runs are
  deterministic and a resumed run equals an uninterrupted one.

What a client receives: :meth:`WidthSliced.client_start` hands out the current global vector (a snapshot
when its download carries over). The slice is cut at training time from that snapshot with the client's
*current* density and the window of the round that dispatched the model (``sim.net.payload_round``); a
density raised by GMR between a carried-over download and its training therefore trains the larger slice
of the dispatch-time weights (the released code would train the smaller model it received, B25). Upload
size is nominal (S * rho) either way (§3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fedgmr.aggregation import BY_VALUE, Coverage, in_slice
from fedgmr.errors import ConfigError
from fedgmr.flat import FlatLayout, flatten_module
from fedgmr.index_map import fill_, gather, scatter_
from fedgmr.methods.base import Method
from fedgmr.models.slicing import (
    build_submodel,
    per_dim_indices,
    slice_indices,
    transformer_rate,
    width_channels,
)
from fedgmr.models.transformer_lm import NUM_HEADS
from fedgmr.profiles import PROFILES
from fedgmr.seeds import Purpose, derive
from fedgmr.training import Trainer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fedgmr.simulation import Simulation

__all__ = [
    "SCALER_MODELS",
    "AuxGated",
    "SubModel",
    "WidthSliced",
    "flat_index",
    "register_family",
    "width_sliced_resolve",
]

# Models with the HeteroFL activation scaler in the released code (reference §7.3).
SCALER_MODELS = ("resnet18", "transformer_lm")
# B21: the released width-sliced baselines on ImageNet-100 use GroupNorm(4) and client lr 0.05.
GN_LR = 0.05
# How many index maps to keep per simulation (FedRolex makes one per window offset).
_MAX_MAPS = 64


@dataclass
class SubModel:
    """One physically smaller model that trains every client of the same widths."""

    channels: tuple[int, ...]
    model: torch.nn.Module
    layout: FlatLayout
    trainer: Trainer


def flat_index(full: FlatLayout, sub: FlatLayout, spec: dict) -> torch.Tensor:
    """Positions in the full flat vector of every entry of the sub-model's flat vector.

    Args:
        full: layout of the full model.
        sub: layout of the sub-model (same tensor names).
        spec: :func:`fedgmr.models.slicing.slice_indices` of the full model for this sub-model.

    Returns:
        int64 tensor ``[sub.numel]``: ``full_flat[idx]`` is the sub-model's flat vector.
    """
    parts = []
    for seg in sub.segments:  # sorted by start: contiguous and in flat order
        f = full.by_name[seg.name]
        pos = mesh_positions(f.start, f.shape, per_dim_indices(spec[seg.name]))
        if pos.numel() != seg.numel:
            raise RuntimeError(f"{seg.name}: slice has {pos.numel()} entries, sub-model {seg.numel}")
        parts.append(pos)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def mesh_positions(start: int, shape: tuple[int, ...], kept: list[torch.Tensor | None]) -> torch.Tensor:
    """Flat positions, in row-major order, of the outer product of ``kept`` (kept indices per dimension,
    None = the whole dimension) in a contiguous tensor of ``shape`` starting at ``start``.

    The same as ``torch.arange(start, start + numel).view(shape)[open mesh of kept].reshape(-1)`` (with
    adjacent sliced dimensions, as ``slice_indices`` makes them), built from the kept indices alone by
    broadcasting: the LEAF CNN's fc1 would otherwise be a 51 MB arange per sub-model and window.
    """
    pos = torch.tensor(start, dtype=torch.int64)
    stride = 1
    coords = []
    for size, k in zip(reversed(tuple(shape)), reversed(kept)):
        coords.append((torch.arange(size, dtype=torch.int64) if k is None else k.to(torch.int64)) * stride)
        stride *= size
    for c in reversed(coords):
        pos = pos.unsqueeze(-1) + c
    return pos.reshape(-1)


def nested_index(full: FlatLayout, outer: tuple[FlatLayout, dict], inner: tuple[FlatLayout, dict]) -> torch.Tensor:
    """Positions of a sub-model's flat vector inside a wider sub-model's flat vector.

    Args:
        full: layout of the full model.
        outer, inner: (layout, ``slice_indices`` of the full model) of the wider and the narrower
            sub-model; every index the narrower one keeps must be kept by the wider one.

    Per dimension, the narrower model's kept indices are looked up among the wider one's (a few
    thousand at most), then laid out like :func:`flat_index` over the wider model's tensors.
    """
    layout_o, spec_o = outer
    layout_i, spec_i = inner
    parts = []
    for seg in layout_i.segments:
        o = layout_o.by_name[seg.name]
        rel: list[torch.Tensor | None] = []
        dims = zip(full.by_name[seg.name].shape, per_dim_indices(spec_o[seg.name]), per_dim_indices(spec_i[seg.name]))
        for size, ko, ki in dims:
            if ko is None and ki is None:
                rel.append(None)
                continue
            ko = torch.arange(size) if ko is None else ko
            ki = torch.arange(size) if ki is None else ki
            where = torch.full((size,), -1, dtype=torch.int64)
            where[ko] = torch.arange(ko.numel())
            r = where[ki]
            if bool((r < 0).any()):
                raise RuntimeError(f"{seg.name}: the narrower slice is not inside the wider one")
            rel.append(r)
        pos = mesh_positions(o.start, o.shape, rel)
        if pos.numel() != seg.numel:
            raise RuntimeError(f"{seg.name}: slice has {pos.numel()} entries, sub-model {seg.numel}")
        parts.append(pos)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def width_sliced_resolve(cfg: dict) -> None:
    """B21: ResNet width-sliced baselines default to GroupNorm(4) and lr 0.05 (as released).

    Switch: set ``model.norm: bn`` to keep BatchNorm (and the profile's lr unless ``training.lr`` is given).
    The lr is only raised when it is still the profile default.
    """
    if cfg["model"]["name"] == "resnet18" and cfg["model"]["norm"] is None:
        cfg["model"]["norm"] = "gn"
        if cfg["training"]["lr"] == PROFILES[cfg["dataset"]["name"]].lr:
            cfg["training"]["lr"] = GN_LR


def counted_steps(sim: "Simulation", rho: float, batches) -> "Iterator":
    """``batches``, unchanged and still drawn lazily, counting each step on a model of density rho."""
    for batch in batches:
        sim.count_steps(rho)
        yield batch


class _Cache:
    """Per-simulation sub-models and index maps (derived state; never checkpointed)."""

    def __init__(self) -> None:
        self.models: dict[tuple[int, ...], SubModel] = {}
        self.maps: dict[tuple[tuple[int, ...], int], torch.Tensor] = {}
        # (outer widths, inner widths) -> positions of the inner slice inside the outer one (FjORD)
        self.nested: dict[tuple[tuple[int, ...], tuple[int, ...]], torch.Tensor] = {}


class WidthSliced(Method):
    """HeteroFL's static front slices; subclasses change the window (FedRolex) or the schedule (FjORD)."""

    script = "SYN"  # released through the SYN scripts (reference §1.4)

    # ---- configuration -------------------------------------------------------------------------
    def resolve(self, cfg: dict) -> None:
        super().resolve(cfg)
        if cfg["model"]["name"] not in ("leaf_cnn", "vgg11", "resnet18", "transformer_lm"):
            raise ConfigError(f"model.name: {cfg['model']['name']!r} has no width-slicing rule")
        width_sliced_resolve(cfg)

    # ---- sub-models ----------------------------------------------------------------------------
    def rebuild_masks(self, sim: "Simulation") -> None:
        """Width-sliced methods have no magnitude masks: the slice is fixed by (rho, window)."""
        sim.masks = None

    def client_start(self, sim: "Simulation", client: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The current global weights; the slice is cut when the client trains (module docstring)."""
        return sim.global_w, None

    def window_offset(self, sim: "Simulation", client: int) -> int:
        """First kept channel of every sliced layer (HeteroFL: always 0)."""
        return 0

    def scaler(self, sim: "Simulation", client: int, rho: float) -> float | None:
        """HeteroFL activation scaler: ResNet sqrt(rho), transformer its width factor (§7.3).

        As released it is lost when a client's model is rebuilt after a density change (B21), i.e. a
        client whose density left its tier trains without it.
        """
        name = sim.cfg["model"]["name"]
        if name not in SCALER_MODELS or rho >= 1.0:
            return None
        if sim.switch("scaler_lost_on_rebuild") and rho != sim.tiers[client]:
            return None
        if name == "resnet18":
            return rho**0.5
        return transformer_rate(sim.model.channels[0], rho, getattr(sim.model, "num_heads", NUM_HEADS))

    def _cache(self, sim: "Simulation") -> _Cache:
        return self.run_state(sim, _Cache)

    def submodel(self, sim: "Simulation", rho: float, offset: int = 0) -> tuple[SubModel, torch.Tensor]:
        """The cached sub-model of density ``rho`` and the flat index map of window ``offset``."""
        cache = self._cache(sim)
        heads = getattr(sim.model, "num_heads", NUM_HEADS)
        channels = width_channels(sim.cfg["model"]["name"], sim.model.channels, rho, num_heads=heads)
        sub = cache.models.get(channels)
        if sub is None:
            sub = self._build(sim, rho, channels)
            cache.models[channels] = sub
        key = (channels, offset)
        idx = cache.maps.get(key)
        if idx is None:
            if len(cache.maps) >= _MAX_MAPS:
                cache.maps.clear()
            spec = slice_indices(sim.model, rho, offset)
            idx = flat_index(sim.layout, sub.layout, spec).to(sim.device)
            cache.maps[key] = idx
        return sub, idx

    def nested(self, sim: "Simulation", outer: float, inner: float) -> tuple[SubModel, torch.Tensor]:
        """The sub-model of density ``inner`` <= ``outer`` (front slices, window 0) and the positions of
        its flat vector inside the ``outer`` slice's flat vector (inside the full vector when
        ``outer >= 1``), so a narrower model trains from and back into the wider slice."""
        sub, idx = self.submodel(sim, inner, 0)
        if outer >= 1.0:
            return sub, idx
        cache = self._cache(sim)
        outer_sub, _ = self.submodel(sim, outer, 0)
        key = (outer_sub.channels, sub.channels)
        pos = cache.nested.get(key)
        if pos is None:
            specs = (slice_indices(sim.model, outer, 0), slice_indices(sim.model, inner, 0))
            pos = nested_index(sim.layout, (outer_sub.layout, specs[0]), (sub.layout, specs[1]))
            cache.nested[key] = pos.to(idx.device)
        return sub, pos

    def _build(self, sim: "Simulation", rho: float, channels: tuple[int, ...]) -> SubModel:
        cfg, data = sim.cfg, sim.data
        m = cfg["model"]
        kwargs: dict = {"channels": sim.model.channels, "variant": m["variant"]}
        if m["norm"]:
            kwargs["norm"] = m["norm"]
        if data.task == "image":
            kwargs["num_classes"] = data.num_classes
        else:
            kwargs["vocab_size"] = data.vocab_size
            kwargs["seq_len"] = int(data.train_x.shape[1])
        # The weights are overwritten before every use; keep torch's global RNG untouched anyway.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_submodel(m["name"], rho, use_scaler=m["name"] in SCALER_MODELS, **kwargs)
        if model.channels != channels:
            raise RuntimeError(f"sub-model widths {model.channels} != expected {channels}")
        layout, work, _ = flatten_module(model, model.prunable, sim.device)
        tr = cfg["training"]
        trainer = Trainer(model, layout, work, tr["loss"], tr["momentum"], tr["weight_decay"])
        return SubModel(channels, model, layout, trainer)

    # ---- local training ------------------------------------------------------------------------
    @staticmethod
    def batches(sim: "Simulation", client: int) -> "Iterator":
        """This client's K batches of this training, exactly as ``Simulation.make_job`` draws them."""
        tn = sim.net.train_number[client]
        gen = torch.Generator().manual_seed(derive(sim.seed, Purpose.BATCH_AUGMENT, client, tn))
        stream = sim.streams[client]
        return (sim.batcher.train_batch(stream.next(sim.batch_size), gen) for _ in range(sim.local_steps))

    @staticmethod
    def step_seed(sim: "Simulation", client: int, *extra: int) -> int:
        return derive(sim.seed, Purpose.DROPOUT, client, sim.net.train_number[client], *extra)

    def train_slice(
        self,
        sim: "Simulation",
        client: int,
        weights: torch.Tensor,
        rho: float,
        offset: int,
        batches,
        scaler: float | None,
        seed: int,
    ) -> torch.Tensor:
        """Train the (rho, offset) slice of the full-size ``weights`` in place on ``batches``; return
        ``weights``. ``rho >= 1`` trains the full model on the engine's own trainer (no index map)."""
        if rho >= 1.0:
            weights.copy_(self.train_full(sim, client, weights, batches, seed))
            return weights
        part, idx = self.trained_slice(sim, client, weights, rho, offset, batches, scaler, seed)
        scatter_(weights, idx, part)
        return weights

    def trained_slice(
        self,
        sim: "Simulation",
        client: int,
        source: torch.Tensor,
        rho: float,
        offset: int,
        batches,
        scaler: float | None,
        seed: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (rho < 1, offset) slice of the full-size ``source``, trained, and its index map. Only the
        slice is gathered; the client's momentum slice is trained and scattered back into its buffer.

        The slice is gathered straight into the sub-model's working vector and trained there (no copy in
        or out), so the returned tensor is that working vector: read it before the sub-model trains again.
        """
        sub, idx = self.submodel(sim, rho, offset)
        mom = sim.momentum[client]
        part = gather(source, idx, out=sub.trainer.work)
        mom_part = None if mom is None else gather(mom, idx)
        self.train_part(sim, client, sub, part, mom_part, rho, batches, scaler, seed)
        if mom is not None:
            scatter_(mom, idx, mom_part)
        return part, idx

    def train_full(self, sim: "Simulation", client: int, start: torch.Tensor, batches, seed: int) -> torch.Tensor:
        """Local steps of the full model from ``start``; the trained weights (a new tensor)."""
        batches = counted_steps(sim, 1.0, batches)
        return sim.trainer.train(start, None, sim.momentum[client], batches, sim.client_lr[client], False, seed)

    def train_part(
        self,
        sim: "Simulation",
        client: int,
        sub: SubModel,
        part: torch.Tensor,
        mom_part: torch.Tensor | None,
        rho: float,
        batches,
        scaler: float | None,
        seed: int,
    ) -> None:
        """Local steps of sub-model ``sub`` on ``part`` (its flat weights) and ``mom_part`` (its slice of
        the client's momentum), both in place. With ``part`` the sub-model's own working vector, the
        trainer's copies in and out are no-ops (``copy_`` of a tensor onto itself returns at once)."""
        if hasattr(sub.model, "scaler"):
            sub.model.scaler = scaler
        lr = sim.client_lr[client]
        sub.trainer.train(part, None, mom_part, counted_steps(sim, rho, batches), lr, False, seed, out=part)

    def finish(
        self, sim: "Simulation", client: int, trained: torch.Tensor, idx: torch.Tensor | None
    ) -> tuple[torch.Tensor, Coverage | None]:
        """The upload: the trained slice ``trained`` (the full vector when ``idx`` is None) at positions
        ``idx`` of a zero-filled full-size vector, covered on the slice (:func:`fedgmr.aggregation.in_slice`):
        by value as released (§6), the whole slice in clean."""
        if idx is None:
            if sim.switch("value_coverage"):
                return trained, BY_VALUE
            return trained, torch.ones_like(trained, dtype=torch.bool)
        upload = scatter_(self.zeroed_upload(sim, client), idx, trained)
        return upload, in_slice(idx, by_value=sim.switch("value_coverage"))

    @staticmethod
    def zeroed_upload(sim: "Simulation", client: int) -> torch.Tensor:
        """A zero full-size vector for the client's next upload: its last upload's buffer with that upload's
        slice zeroed again when it was one (merged on arrival, so free; the server keeps its own copy when
        arrivals are not phantom, and the base loop reuses the buffer the same way), else a new vector."""
        old, cover = sim.uploads[client], sim.coverage[client]
        if old is not None and isinstance(cover, tuple):
            return fill_(old, cover[1], 0.0)
        return torch.zeros_like(sim.global_w)

    def local_update(
        self, sim: "Simulation", client: int, start: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, Coverage | None]:
        """K local steps on the client's physically smaller model, scattered back (§7.3): the upload is
        the trained slice in a zero-filled vector (``start`` is never copied whole)."""
        rho = sim.densities[client]
        batches, seed = self.batches(sim, client), self.step_seed(sim, client)
        if rho >= 1.0:
            return self.finish(sim, client, self.train_full(sim, client, start, batches, seed), None)
        offset, scaler = self.window_offset(sim, client), self.scaler(sim, client, rho)
        trained, idx = self.trained_slice(sim, client, start, rho, offset, batches, scaler, seed)
        return self.finish(sim, client, trained, idx)


class AuxGated(WidthSliced):
    """Width-sliced +Aux(+GMR): as released (`PRR`, `FJT`) client promotions wait for ``begin_save``."""

    def restoration_options(self, cfg: dict) -> dict:
        # B8 (GMR frozen after the first global restoration) is fixed in both semantics: the default.
        return {"gate_clients_on_begin_save": cfg["switches"]["promotions_wait_for_begin_save"]}


def register_family(
    cls: type[WidthSliced], aux_cls: type[WidthSliced], name: str, label: str, what: str
) -> None:
    """Register ``name``, ``name_aux`` and ``name_aux_gmr`` with the switches of reference §1.4/§1.6."""
    from fedgmr.methods.registry import register  # late: the registry imports the method modules

    register(
        cls(
            name,
            f"{label}: {what}; sync, no IMS, MA",
            label,
            sync=True,
            ims=False,
            merge="ma",
            recover=False,
            client_triggers=False,
        )
    )
    register(
        aux_cls(
            f"{name}_aux",
            f"{label}+Aux: async deadline, IMS, staleness-weighted MA, no GMR",
            f"{label}+Aux",
            sync=False,
            ims=True,
            merge="ma",
            recover=False,
            client_triggers=False,
        )
    )
    register(
        aux_cls(
            f"{name}_aux_gmr",
            f"{label}+Aux+GMR: +Aux with GMR and per-client triggers",
            f"{label}+Aux+GMR",
            sync=False,
            ims=True,
            merge="ma",
            recover=True,
            client_triggers=True,
        )
    )
