"""Run configuration: schema, defaults, validation and the run id.

A config is a nested mapping (YAML or JSON). ``resolve_config`` fills every value the user left out from
the method's switches and the dataset profile (``fedgmr.profiles``), validates types, ranges and
choices, and returns a plain dict: what ``config.json`` records and what ``run_id`` hashes. Unknown keys
and bad values raise ``ConfigError`` with one line naming the key.

Semantics (design §4): ``semantics: released`` reproduces the authors' code, ``clean`` what the paper
describes. Each quirk is a named switch under ``switches``; left at ``null`` it follows ``semantics``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fedgmr.errors import ConfigError  # re-exported: callers import it from here too
from fedgmr.population import released_standard_rule
from fedgmr.profiles import PROFILES

_SHORT = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 3, 6, 6, 60, 60


def _short(value: Any, limit: int = 80) -> str:
    """A bounded repr for messages: a YAML alias bomb or a huge list must not be expanded to print it."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(path: str, value: Any, typ: type, lo: float, hi: float) -> Any:
    """``value`` as ``typ`` (an int is accepted for a float) if it is finite and within [lo, hi]."""
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{path}: {_short(value)} is out of range [{lo}, {hi}]") from None
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ConfigError(f"{path}: expected {typ.__name__}, got {_short(value)}")
    if typ is float and not math.isfinite(value):
        raise ConfigError(f"{path}: {value!r} is not a finite number")
    if not lo <= value <= hi:
        raise ConfigError(f"{path}: {_short(value)} is out of range [{lo}, {hi}]")
    return value


def _fractions(count: int | None = None, lo: float = 0.0, max_len: int = 100) -> Callable[[str, Any], list]:
    """A check for a list of finite numbers in [lo, 1] (exactly ``count`` of them when given)."""

    def check(path: str, value: Any) -> list:
        if not isinstance(value, list) or not value or len(value) > max_len:
            raise ConfigError(f"{path}: expected a list of 1 to {max_len} numbers in [{lo}, 1], got {_short(value)}")
        if count is not None and len(value) != count:
            raise ConfigError(f"{path}: expected {count} numbers, got {len(value)}")
        return [_number(f"{path}[{i}]", v, float, lo, 1.0) for i, v in enumerate(value)]

    return check


def _lr_schedule(path: str, value: Any) -> dict | None:
    """``{kind: constant}``, ``{kind: step, step: N, gamma: g}`` or ``{kind: multistep, milestones: [..], gamma: g}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping with `kind`, got {_short(value)}")
    kinds = {"constant": set(), "step": {"step", "gamma"}, "multistep": {"milestones", "gamma"}}
    kind = value.get("kind", "constant")
    if kind not in kinds:
        raise ConfigError(f"{path}.kind: {_short(kind)} is not one of: {', '.join(kinds)}")
    extra = set(value) - kinds[kind] - {"kind"}
    if extra:
        raise ConfigError(f"{path}.{sorted(map(str, extra))[0]}: unknown key for kind {kind!r}")
    missing = kinds[kind] - set(value)
    if missing:
        raise ConfigError(f"{path}.{sorted(missing)[0]}: required for kind {kind!r}")
    out: dict[str, Any] = {"kind": kind}
    if "gamma" in value:
        out["gamma"] = _number(f"{path}.gamma", value["gamma"], float, 1e-12, 1e3)
    if "step" in value:
        out["step"] = _number(f"{path}.step", value["step"], int, 1, 10**9)
    if "milestones" in value:
        ms = value["milestones"]
        if not isinstance(ms, list) or len(ms) > 1000:
            raise ConfigError(f"{path}.milestones: expected a list of at most 1000 rounds, got {_short(ms)}")
        out["milestones"] = [_number(f"{path}.milestones[{i}]", m, int, 0, 10**9) for i, m in enumerate(ms)]
    return out


def _model_name(path: str, value: Any) -> str | None:
    from fedgmr.models import MODELS

    if value is not None and (not isinstance(value, str) or value not in MODELS):
        raise ConfigError(f"{path}: {_short(value)} is not one of: {', '.join(sorted(MODELS))}")
    return value


_DEVICE = re.compile(r"(cpu|cuda|mps)(:\d{1,3})?")


def _device(path: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ConfigError(f"{path}: {_short(value)} is not a torch device (cpu, cuda, cuda:N, mps)")
    return value


def _path(path: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 4096:
        raise ConfigError(f"{path}: expected a file system path, got {_short(value)}")
    return value


def _name(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ConfigError(f"{path}: expected a name, got {_short(value)}")
    return value


# Each leaf: (default, check). ``None`` defaults mean "from the dataset profile or the method".
# check is a tuple of allowed values, a (type, lo, hi) range, a type, or a function (path, value) -> value.
_ANY_PATH = _path
SCHEMA: dict[str, Any] = {
    "method": ("fedgmr", _name),
    "semantics": ("released", ("released", "clean")),
    "seed": (0, (int, 0, 2**31 - 1)),
    "fixed_density": (None, (float, 0.0, 1.0)),
    "dataset": {
        "name": ("synthetic_image", tuple(PROFILES)),
        "root": (None, _ANY_PATH),
        "partition": ("iid", ("iid", "noniid", "natural")),
        "alpha": (0.6, (float, 1e-6, 1e6)),
        "partition_file": (None, _ANY_PATH),
        "synthetic_train": (2000, (int, 10, 10**7)),
        "synthetic_test": (500, (int, 10, 10**7)),
        "val_fraction": (0.1, (float, 0.0, 0.5)),
    },
    "model": {
        "name": (None, _model_name),
        "width": (1.0, (float, 0.01, 4.0)),
        "variant": ("bp", ("bp", "plain")),
        "norm": (None, ("bn", "gn", None)),
    },
    "clients": {
        "num": (10, (int, 1, 100_000)),
        "heterogeneity": ("high", ("high", "medium", "low")),
        "tiers": ([1.0, 0.5, 0.2, 0.1, 0.05], _fractions(5, lo=1e-6)),
    },
    "network": {
        "model_size_mb": (None, (float, 1e-6, 1e6)),
        "compute_time": (0.5, (float, 0.0, 1e6)),
        "server_up": (10.0, (float, 1e-6, 1e9)),
        "server_down": (50.0, (float, 1e-6, 1e9)),
        "client_down": (20.0, (float, 1e-6, 1e9)),
        "client_up": (5.0, (float, 1e-6, 1e9)),
        "client_sigma": (0.3, (float, 0.0, 10.0)),
        "server_sigma": (0.1, (float, 0.0, 10.0)),
        "draws": (20, (int, 1, 10_000)),
    },
    "training": {
        "local_steps": (None, (int, 1, 100_000)),
        "batch_size": (None, (int, 1, 100_000)),
        "lr": (None, (float, 0.0, 100.0)),
        "momentum": (None, (float, 0.0, 1.0)),
        "weight_decay": (None, (float, 0.0, 1.0)),
        "lr_schedule": (None, _lr_schedule),
        "loss": (None, ("bce_onehot", "ce", None)),
    },
    "schedule": {
        "interval": (None, (int, 1, 10**7)),
        "max_rounds": (None, (int, 1, 10**9)),
        "max_time": (None, (float, 0.0, 1e12)),
    },
    "restoration": {
        "patience": (None, (int, 1, 10_000)),
        "trigger": (None, ("early", "time", "mixed", None)),
        "step_mode": ("ladder", ("ladder", "fixed")),
        "step": (0.1, (float, 1e-6, 1.0)),
        "time_total": (None, (float, 0.0, 1e12)),
        "time_points": ([0.2, 0.4, 0.6, 0.8, 1.0], _fractions()),
        "time_ladder": ([0.05, 0.1, 0.2, 0.5, 1.0], _fractions()),
        "min_density": (None, (float, 0.0, 1.0)),
    },
    "staleness": {
        "kind": ("poly", ("poly", "const", "hinge")),
        "a": (0.6, (float, 0.0, 100.0)),
    },
    "evaluation": {
        "max_test": (None, (int, 1, 10**9)),
        "batch_size": (500, (int, 1, 10**6)),
    },
    "switches": {
        "phantom_arrivals": (None, (bool, type(None))),  # B1
        "misindexed_staleness": (None, (bool, type(None))),  # B2
        "dense_round0": (None, (bool, type(None))),  # B12
        "stale_client_scores": (None, (bool, type(None))),  # B13
        "gmr_signal": (None, ("test", "validation", None)),  # B14
        "fedavg_femnist_half": (None, (bool, type(None))),  # B19
        "value_coverage": (None, (bool, type(None))),  # B6: coverage from non-zero values, no re-masking
        "ims_lag": (None, (bool, type(None))),  # B10
        "standard_clients": (None, ("released", "tier", None)),  # B28
        "released_startup": (None, (bool, type(None))),  # B29
        "bias_gating": (None, (bool, type(None))),  # §4.4: bp layers gate biases of unmasked units
        "startup_tiers": (None, (bool, type(None))),  # §5: the floor rho_min applies from the first tick
        "sorted_shards": (None, (bool, type(None))),  # §2.3: Dirichlet shards in class order, by size
        "fedrolex_static": (None, (bool, type(None))),  # B11: FedRolex windows static / tick-rolling
        "fiarse_threshold_layers": (None, (bool, type(None))),  # B3: FIARSE's shared 2 % threshold
        "fjord_width_cycling": (None, (bool, type(None))),  # B20: deterministic width cycle per step
        "scaler_lost_on_rebuild": (None, (bool, type(None))),  # B21: HeteroFL scaler lost after a rebuild
        "promotions_wait_for_begin_save": (None, (bool, type(None))),  # §5: PRR/FJT gate client promotions
    },
    "run": {
        "checkpoint_every": (4, (int, 1, 10**6)),
        "device": ("cpu", _device),
        "threads": (None, (int, 1, 1024)),
        "progress": (True, bool),
        # Train the clients of one iteration together (fedgmr.batched); false = one after another.
        "batch_clients": (True, bool),
        # How: auto = vmap on accelerators, one after another on the CPU (measured faster there, see
        # fedgmr.batched.default_backend); threads = 1-thread CPU workers; vmap = stacked clients.
        "batch_backend": ("auto", ("auto", "threads", "vmap")),
    },
}

# What each switch is under `released` (the authors' code) and `clean` (the paper).
SWITCH_VALUES = {
    "released": dict(
        phantom_arrivals=True,
        misindexed_staleness=True,
        dense_round0=True,
        stale_client_scores=True,
        gmr_signal="test",
        fedavg_femnist_half=True,
        value_coverage=True,
        ims_lag=True,
        standard_clients="released",
        released_startup=True,
        bias_gating=True,
        startup_tiers=True,
        sorted_shards=True,
        fedrolex_static=True,
        fiarse_threshold_layers=True,
        fjord_width_cycling=True,
        scaler_lost_on_rebuild=True,
        promotions_wait_for_begin_save=True,
    ),
    "clean": dict(
        phantom_arrivals=False,
        misindexed_staleness=False,
        dense_round0=False,
        stale_client_scores=False,
        gmr_signal="validation",
        fedavg_femnist_half=False,
        value_coverage=False,
        ims_lag=False,
        standard_clients="tier",
        released_startup=False,
        bias_gating=False,
        startup_tiers=False,
        sorted_shards=False,
        fedrolex_static=False,
        fiarse_threshold_layers=False,
        fjord_width_cycling=False,
        scaler_lost_on_rebuild=False,
        promotions_wait_for_begin_save=False,
    ),
}



def _defaults(schema: dict) -> dict:
    return {k: _defaults(v) if isinstance(v, dict) else copy.deepcopy(v[0]) for k, v in schema.items()}


def _check(path: str, value: Any, check: Any) -> Any:
    if callable(check) and not isinstance(check, type):
        return check(path, value)
    if (
        isinstance(check, tuple)
        and check
        and isinstance(check[0], type)
        and len(check) == 3
        and not isinstance(check[1], type)
    ):
        typ, lo, hi = check
        if value is None:
            return None
        return _number(path, value, typ, lo, hi)
    if isinstance(check, tuple) and all(isinstance(c, type) for c in check):
        if float in check and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, check):
            raise ConfigError(f"{path}: expected {' or '.join(c.__name__ for c in check)}, got {_short(value)}")
        return value
    if isinstance(check, tuple):
        if isinstance(value, (list, dict)) or value not in check:
            allowed = ", ".join(str(c) for c in check if c is not None)
            raise ConfigError(f"{path}: {_short(value)} is not one of: {allowed}")
        return value
    if isinstance(check, type):
        if not isinstance(value, check) or (check is not bool and isinstance(value, bool)):
            raise ConfigError(f"{path}: expected {check.__name__}, got {_short(value)}")
        return value
    raise AssertionError(check)


def _merge(path: str, schema: dict, into: dict, raw: Any) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {_short(raw)}")
    for key, value in raw.items():
        name = key if isinstance(key, str) else _short(key)
        full = f"{path}.{name}" if path else name
        if not isinstance(key, str) or key not in schema:
            raise ConfigError(f"{full}: unknown key")
        if isinstance(schema[key], dict):
            _merge(full, schema[key], into[key], value)
        else:
            into[key] = _check(full, value, schema[key][1])


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    dup = key in seen
                except TypeError:  # an unhashable key: the base class reports it
                    break
                if dup:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_short(key)}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML/JSON text with duplicate keys refused; every failure is one ``ConfigError`` line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ConfigError(f"{where}: not valid YAML/JSON ({first[:200]})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


def load_raw(path: str | Path) -> dict:
    """Read a YAML or JSON config file: a mapping at the top, UTF-8, no duplicate keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or type(exc).__name__})") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top, got {type(data).__name__}")
    return data


def resolve_config(raw: dict) -> dict:
    """Fill defaults from method and dataset profile, validate, and return the resolved config."""
    from fedgmr.methods.registry import METHODS  # late import: methods import config types

    cfg = _defaults(SCHEMA)
    _merge("", SCHEMA, cfg, raw)
    if cfg["method"] not in METHODS:
        raise ConfigError(f"method: unknown method {cfg['method']!r} (see `python -m fedgmr methods`)")
    method = METHODS[cfg["method"]]
    prof = PROFILES[cfg["dataset"]["name"]]
    sem = SWITCH_VALUES[cfg["semantics"]]
    for key, value in cfg["switches"].items():
        if value is None:
            cfg["switches"][key] = sem[key]
    if cfg["switches"]["standard_clients"] == "released":
        # As released the rule depends on the script that runs the method and the dataset (B28, §2.1).
        cfg["switches"]["standard_clients"] = released_standard_rule(method.script, prof.stands_in_for)

    tr = cfg["training"]
    for key in ("local_steps", "batch_size", "lr", "momentum", "weight_decay", "lr_schedule", "loss"):
        if tr[key] is None:
            tr[key] = copy.deepcopy(getattr(prof, key))
    sc = cfg["schedule"]
    for key in ("interval", "max_rounds", "max_time"):
        if sc[key] is None:
            sc[key] = getattr(prof, key)
    sc["max_time"] = float(sc["max_time"])
    if cfg["model"]["name"] is None:
        cfg["model"]["name"] = prof.model
    if cfg["network"]["model_size_mb"] is None:
        cfg["network"]["model_size_mb"] = prof.model_size_mb
    rs = cfg["restoration"]
    if rs["patience"] is None:
        key = (
            f"{'noniid' if cfg['dataset']['partition'] != 'iid' else 'iid'}_{cfg['clients']['heterogeneity']}"
        )
        rs["patience"] = prof.patience.get(key, 5)
    if rs["time_total"] is None:
        rs["time_total"] = float(prof.recover_time_total)
    if len(rs["time_points"]) != len(rs["time_ladder"]):
        raise ConfigError("restoration.time_points: must have as many entries as restoration.time_ladder")
    tiers = cfg["clients"]["tiers"]
    if len(tiers) != 5 or any(not isinstance(t, (int, float)) or not 0 < t <= 1 for t in tiers):
        raise ConfigError("clients.tiers: expected five densities in (0, 1]")
    if cfg["dataset"]["name"] in _SYNTHETIC and cfg["clients"]["num"] > cfg["dataset"]["synthetic_train"]:
        raise ConfigError(
            f"clients.num: {cfg['clients']['num']} clients but only {cfg['dataset']['synthetic_train']} "
            "training samples (dataset.synthetic_train)"
        )
    if cfg["dataset"]["name"] not in _SYNTHETIC and not cfg["dataset"]["root"]:
        raise ConfigError(
            f"dataset.root: required for dataset {cfg['dataset']['name']!r} "
            f"(prepare it with `python -m data_prep prepare {cfg['dataset']['name']} --out DIR`)"
        )
    method.resolve(cfg)  # method-specific defaults and checks (trigger, min_density, fixed_density, ...)
    return cfg


# Dataset keys that say where files are, not what they hold: the run id keeps only whether they are set,
# and the content enters through ``data_fingerprint`` (the prepared data's manifest checksum).
_LOCATION_KEYS = ("root", "partition_file")
_SYNTHETIC = ("synthetic_image", "synthetic_text")


def run_id(resolved: dict) -> str:
    """Short, stable hash of what determines a run's numbers.

    Hashed: the resolved config without the ``run`` section (checkpoint cadence, device, progress bar),
    except ``run.threads``: CPU results depend on the intra-op thread count (a tiny run differs in the 6th
    significant digit of the loss between 1 and 2 threads), so a pinned count is part of the identity; left
    unset (torch's default, the machine's core count) it hashes as null. Not hashed: where the data lives
    (``dataset.root``, ``dataset.partition_file``), so two machines with the data at different paths agree on
    the id. The data's content is checked separately through :func:`data_fingerprint` (checkpoints are
    keyed on it), because a workflow names its runs before the data is prepared.
    """
    body = {k: v for k, v in resolved.items() if k != "run"}
    body["dataset"] = {
        k: (bool(v) if k in _LOCATION_KEYS else v) for k, v in resolved.get("dataset", {}).items()
    }
    body["threads"] = resolved.get("run", {}).get("threads")
    # Batched training sums in another order than one client at a time: the last bits can differ.
    body["batch_clients"] = resolved.get("run", {}).get("batch_clients", True)
    backend = resolved.get("run", {}).get("batch_backend", "auto")
    if backend != "auto":  # named only when set, so runs hashed before the key existed keep their hash
        body["batch_backend"] = backend
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def data_fingerprint(resolved: dict) -> str | None:
    """sha256 over the prepared dataset's ``manifest.json`` and the partition's ``partition.json`` bytes.

    The manifests carry the sha256 of every array, so this names the exact data a run trains on. None for
    generated data with no partition file (the config alone determines it); a manifest that cannot be read
    counts as absent (loading the data reports it).
    """
    ds = resolved["dataset"]
    parts = []
    if ds.get("root") and ds.get("name") not in _SYNTHETIC:
        parts.append(("dataset", Path(ds["root"]) / "manifest.json"))
    if ds.get("partition_file"):
        parts.append(("partition", Path(ds["partition_file"]) / "partition.json"))
    if not parts:
        return None
    h = hashlib.sha256()
    for label, path in parts:
        try:
            h.update(label.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            h.update(label.encode() + b"\0missing")
    return h.hexdigest()
