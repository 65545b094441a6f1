"""Command line: ``python -m fedgmr run CONFIG --out DIR`` and ``python -m fedgmr methods``."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from fedgmr import status as _status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fedgmr", description="Virtual-time simulator for FedGMR and its baselines."
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run",
        help="run (or resume) one simulation",
        description="Run one simulation from a YAML/JSON config. Rerunning the same command "
        "after a kill resumes from the last checkpoint.",
    )
    r.add_argument("config", help="YAML or JSON run config (see config/examples/tiny.yaml)")
    r.add_argument("--out", required=True, help="output directory for config.json, metrics.csv, ...")
    r.add_argument("--checkpoint-dir", help="where checkpoints live (default: OUT/checkpoint)")
    r.add_argument("--device", help="torch device, e.g. cpu or cuda (overrides run.device)")
    r.add_argument("--threads", type=int, help="torch intra-op threads (overrides run.threads)")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set schedule.max_rounds=50 (YAML value)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("-v", "--verbose", action="store_true")
    sub.add_parser("methods", help="list the registered methods")
    _status.add_parser(sub)
    c = sub.add_parser("resolve", help="print the fully resolved config and its run id")
    c.add_argument("config")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return p


def _apply_sets(raw: dict, sets: list[str]) -> dict:
    from fedgmr.config import ConfigError, parse_yaml

    for item in sets:
        key, eq, value = item.partition("=")
        parts = key.split(".")
        if not eq or not all(parts):
            raise ConfigError(f"--set {item}: expected KEY=VALUE with a dotted KEY")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a section")
        node[parts[-1]] = parse_yaml(value, f"--set {key}")
    return raw


def _cmd_methods() -> int:
    from fedgmr.methods.registry import METHODS

    width = max(len(n) for n in METHODS)
    for name, m in sorted(METHODS.items()):
        print(f"{name:<{width}}  {m.summary}")
    return 0


def _cmd_resolve(args) -> int:
    import json

    from fedgmr.config import load_raw, resolve_config, run_id

    cfg = resolve_config(_apply_sets(load_raw(args.config), args.set))
    print(json.dumps(cfg | {"run_id": run_id(cfg)}, indent=2, sort_keys=True))
    return 0


def _cmd_run(args) -> int:
    import torch

    from fedgmr.config import load_raw, resolve_config
    from fedgmr.runlock import run_lock
    from fedgmr.runner import run

    raw = _apply_sets(load_raw(args.config), args.set)
    raw.setdefault("run", {})
    if not isinstance(raw["run"], dict):
        from fedgmr.config import ConfigError

        raise ConfigError(f"run: expected a mapping, got {type(raw['run']).__name__}")
    if args.device:
        raw["run"]["device"] = args.device
    if args.threads is not None:
        raw["run"]["threads"] = args.threads
    cfg = resolve_config(raw)
    if cfg["run"]["threads"]:
        torch.set_num_threads(cfg["run"]["threads"])
    out = Path(args.out)
    ckdir = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    _check_dir("--out", out)
    if ckdir is not None:
        _check_dir("--checkpoint-dir", ckdir)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from fedgmr.config import ConfigError

        raise ConfigError(f"--out {out}: cannot create it ({exc.strerror or type(exc).__name__})") from None
    with run_lock(out):  # a second run on this OUT is refused here, before it touches anything
        try:
            _check_data_of_complete_run(out, cfg)
            run(cfg, out, ckdir, cfg["run"]["device"], progress=cfg["run"]["progress"] and not args.no_progress)
            _stamp_run_info(out, cfg)
        except Exception:
            # Errors found while setting up (e.g. a dataset that does not load) leave no result files.
            if created and out.exists() and not (out / "metrics.csv").exists():
                shutil.rmtree(out, ignore_errors=True)
            raise
    return 0


# ---- run: checks of the output locations and of the data a finished run used -----------------------------


def _check_dir(flag: str, path: Path) -> None:
    """One line for a directory argument that cannot be one: a file, or a place we cannot write."""
    import os

    from fedgmr.config import ConfigError

    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a directory")
    probe = path
    while not probe.exists():  # the nearest existing ancestor decides whether we can create it
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{flag} {path}: {probe} is not a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {probe} is not writable")


def _check_data_of_complete_run(out: Path, cfg: dict) -> None:
    """A finished run in OUT that trained on other prepared data is not "already done" for this data."""
    import json

    from fedgmr.config import ConfigError, data_fingerprint, run_id

    try:
        info = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return
    if not isinstance(info, dict) or info.get("run_id") != run_id(cfg) or "data_sha256" not in info:
        return
    now = data_fingerprint(cfg)
    if info["data_sha256"] != now:
        raise ConfigError(
            f"--out {out}: holds this config's finished run on other prepared data (data sha256 "
            f"{str(info['data_sha256'])[:12]}, now {str(now)[:12]}); use another --out or delete {out}"
        )


def _stamp_run_info(out: Path, cfg: dict) -> None:
    """Record the data fingerprint in run.json (the engine writes the rest, threads and device included)."""
    import json

    from fedgmr.config import data_fingerprint
    from fedgmr.results import atomic_write

    path = out / "run.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(info, dict) and "data_sha256" not in info:
        info["data_sha256"] = data_fingerprint(cfg)
        atomic_write(path, json.dumps(info, indent=2, default=str))


_MAX_MESSAGE = 400  # one readable line, whatever a message would list (e.g. every empty client)


def main(argv: list[str] | None = None) -> int:
    from fedgmr.config import ConfigError

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from data_prep.errors import DataError
    from fedgmr.runlock import RunLocked

    try:
        if args.command == "status":
            return _status.command(args)
        if args.command == "methods":
            return _cmd_methods()
        if args.command == "resolve":
            return _cmd_resolve(args)
        return _cmd_run(args)
    except (ConfigError, DataError, RunLocked) as exc:
        msg = " ".join(str(exc).split())
        if len(msg) > _MAX_MESSAGE:  # keep the head (what) and the tail (why, what to do)
            msg = msg[: _MAX_MESSAGE * 2 // 3] + " ... " + msg[-_MAX_MESSAGE // 3 :]
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except RecursionError:
        print("error: config nested too deeply", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
