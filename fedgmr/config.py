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
from pathlib import Path
from typing import Any

import yaml

from fedgmr.profiles import PROFILES


class ConfigError(ValueError):
    """A configuration problem, reported to the user as one line."""


# Each leaf: (default, check). ``None`` defaults mean "from the dataset profile or the method".
# check is a tuple of allowed values, a (type, lo, hi) range, or a type.
_ANY_PATH = (str, type(None))
SCHEMA: dict[str, Any] = {
    "method": ("fedgmr", str),
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
        "name": (None, (str, type(None))),
        "width": (1.0, (float, 0.01, 4.0)),
        "variant": ("bp", ("bp", "plain")),
        "norm": (None, ("bn", "gn", None)),
    },
    "clients": {
        "num": (10, (int, 1, 100_000)),
        "heterogeneity": ("high", ("high", "medium", "low")),
        "tiers": ([1.0, 0.5, 0.2, 0.1, 0.05], list),
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
        "lr_schedule": (None, (dict, type(None))),
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
        "time_points": ([0.2, 0.4, 0.6, 0.8, 1.0], list),
        "time_ladder": ([0.05, 0.1, 0.2, 0.5, 1.0], list),
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
    },
    "run": {
        "checkpoint_every": (4, (int, 1, 10**6)),
        "device": ("cpu", str),
        "threads": (None, (int, 1, 1024)),
        "progress": (True, bool),
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
    ),
}

# Datasets whose released scripts use the medium shares for the standard-client count (B28, §2.1).
_MEDIUM_STANDARD = {"cifar10", "imagenet100", "stackoverflow", "changelogs"}


def _defaults(schema: dict) -> dict:
    return {k: _defaults(v) if isinstance(v, dict) else copy.deepcopy(v[0]) for k, v in schema.items()}


def _check(path: str, value: Any, check: Any) -> Any:
    if (
        isinstance(check, tuple)
        and check
        and isinstance(check[0], type)
        and len(check) == 3
        and not isinstance(check[1], type)
    ):
        typ, lo, hi = check
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is None:
            return None
        if not isinstance(value, typ) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected {typ.__name__}, got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(f"{path}: {value!r} is out of range [{lo}, {hi}]")
        return value
    if isinstance(check, tuple) and all(isinstance(c, type) for c in check):
        if float in check and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, check):
            raise ConfigError(f"{path}: expected {' or '.join(c.__name__ for c in check)}, got {value!r}")
        return value
    if isinstance(check, tuple):
        if value not in check:
            allowed = ", ".join(str(c) for c in check if c is not None)
            raise ConfigError(f"{path}: {value!r} is not one of: {allowed}")
        return value
    if isinstance(check, type):
        if not isinstance(value, check):
            raise ConfigError(f"{path}: expected {check.__name__}, got {value!r}")
        return value
    raise AssertionError(check)


def _merge(path: str, schema: dict, into: dict, raw: Any) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {raw!r}")
    for key, value in raw.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in schema:
            raise ConfigError(f"{full}: unknown key")
        if isinstance(schema[key], dict):
            _merge(full, schema[key], into[key], value)
        else:
            into[key] = _check(full, value, schema[key][1])


def load_raw(path: str | Path) -> dict:
    """Read a YAML or JSON config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    return data or {}


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
        cfg["switches"]["standard_clients"] = "medium" if prof.name in _MEDIUM_STANDARD else "tier"

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
    if cfg["dataset"]["name"] not in ("synthetic_image", "synthetic_text") and not cfg["dataset"]["root"]:
        raise ConfigError(
            f"dataset.root: required for dataset {cfg['dataset']['name']!r} "
            f"(prepare it with `python -m data_prep prepare {cfg['dataset']['name']} --out DIR`)"
        )
    method.resolve(cfg)  # method-specific defaults and checks (trigger, min_density, fixed_density, ...)
    return cfg


def run_id(resolved: dict) -> str:
    """Short, stable hash of the resolved config (run-control keys excluded)."""
    body = {k: v for k, v in resolved.items() if k != "run"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
