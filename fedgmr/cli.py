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
    import yaml

    from fedgmr.config import ConfigError

    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
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
    from fedgmr.simulation import run

    raw = _apply_sets(load_raw(args.config), args.set)
    raw.setdefault("run", {})
    if args.device:
        raw["run"]["device"] = args.device
    if args.threads:
        raw["run"]["threads"] = args.threads
    cfg = resolve_config(raw)
    if cfg["run"]["threads"]:
        torch.set_num_threads(cfg["run"]["threads"])
    out = Path(args.out)
    created = not out.exists()
    try:
        run(
            cfg,
            out,
            Path(args.checkpoint_dir) if args.checkpoint_dir else None,
            cfg["run"]["device"],
            progress=cfg["run"]["progress"] and not args.no_progress,
        )
    except Exception:
        # Errors found while setting up (e.g. a dataset that does not load) leave no result files.
        if created and out.exists() and not (out / "metrics.csv").exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    return 0


def main(argv: list[str] | None = None) -> int:
    from fedgmr.config import ConfigError

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "status":
            return _status.command(args)
        if args.command == "methods":
            return _cmd_methods()
        if args.command == "resolve":
            return _cmd_resolve(args)
        return _cmd_run(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
