"""Command line: ``python -m data_prep prepare DATASET --out DIR`` and ``python -m data_prep partition``.

Any :class:`~data_prep.errors.DataError` (missing source, corrupt file, bad argument combination) is reported
as one line on stderr with exit status 2; the output directory is then not created.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from .errors import DataError
from .registry import preparers
from .staging import staged_dir

log = logging.getLogger("data_prep")

SCHEMES = ("dirichlet", "iid", "natural", "stackoverflow_iid")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    prep = sub.add_parser(
        "prepare",
        help="raw source -> prepared dataset directory",
        description="Prepare a dataset: arrays + manifest.json in --out.",
    )
    ds = prep.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, pr in preparers().items():
        d = ds.add_parser(name, help=pr.help, description=pr.help)
        d.add_argument("--out", required=True, type=Path, help="output directory (written atomically)")
        d.add_argument("--source", default=None, help="raw source file or folder")
        pr.add_arguments(d)

    part = sub.add_parser(
        "partition",
        help="prepared dataset -> client partition",
        description="Split a prepared training set over clients (reference §2.3).",
    )
    part.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    part.add_argument("--out", required=True, type=Path, help="output directory")
    part.add_argument("--scheme", required=True, choices=SCHEMES)
    part.add_argument("--num-clients", type=int, default=10)
    part.add_argument("--alpha", type=float, default=0.6, help="Dirichlet concentration")
    part.add_argument("--seed", type=int, default=0)
    part.add_argument("--semantics", choices=("released", "clean"), default="released")
    return p


def _overlap(a: Path, b: Path) -> bool:
    """True when one path is the other or lies inside it."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _prepare(a: argparse.Namespace) -> None:
    pr = preparers()[a.dataset]
    # Replacing --out must never delete the source: refuse it as --out or inside --out.
    if a.source and Path(a.source).resolve().is_relative_to(Path(a.out).resolve()):
        raise DataError(f"--source {a.source} lies in --out {a.out}; write the prepared data elsewhere")
    # Check the source before anything is written, so a missing file leaves no directory behind.
    pr.check(a)
    with staged_dir(a.out) as tmp:
        manifest = pr.build(a, tmp)
    log.info("prepared %s in %s: %s", a.dataset, a.out, manifest["counts"])


def _partition(a: argparse.Namespace) -> None:
    from . import partition as P
    from .manifest import load_prepared

    if _overlap(a.data, a.out):
        raise DataError(f"--out {a.out} and --data {a.data} overlap; write the partition elsewhere")
    data = load_prepared(a.data)
    n = len(data.train_x)
    labels = data.train_y
    if not 1 <= a.num_clients <= n:
        raise DataError(f"--num-clients {a.num_clients}: expected 1 to {n} (the number of training samples)")
    if not (math.isfinite(a.alpha) and 1e-6 <= a.alpha <= 1e6):
        raise DataError(f"--alpha {a.alpha}: expected a finite concentration in [1e-6, 1e6]")
    if not 0 <= a.seed < 2**32:
        raise DataError(f"--seed {a.seed}: expected 0 to 2**32-1")
    if a.scheme == "dirichlet":
        if labels is None:
            raise DataError(f"{a.data} is a language-model dataset: the dirichlet scheme needs class labels")
        parts = P.dirichlet(labels, a.num_clients, a.alpha, a.seed, a.semantics)
    elif a.scheme == "iid":
        parts = P.iid(n, a.num_clients, a.seed)
    elif a.scheme == "stackoverflow_iid":
        parts = P.stackoverflow_iid(n, a.num_clients, a.seed)
    else:
        if data.train_group is None:
            raise DataError(f"{a.data} has no train_group.npy: the natural scheme needs writer/user groups")
        groups = int(data.train_group.max()) + 1 if len(data.train_group) else 0
        if a.num_clients > groups:
            raise DataError(f"--num-clients {a.num_clients}: {a.data} has only {groups} writer/user groups")
        parts = P.natural(data.train_group, a.num_clients)
    meta = {
        "dataset": data.name,
        "scheme": a.scheme,
        "alpha": a.alpha if a.scheme == "dirichlet" else None,
        "seed": a.seed,
        "semantics": a.semantics,
        "dataset_manifest_sha256": P.manifest_sha(a.data),
        "data_dir": str(a.data),
    }
    with staged_dir(a.out) as tmp:
        info = P.write_partition(parts, tmp, meta, labels=labels, num_classes=data.num_classes)
    log.info("partition %s: sizes %s", a.out, info["sizes"])


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    a = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        _prepare(a) if a.command == "prepare" else _partition(a)
    except DataError as exc:
        sys.stderr.write(f"data_prep: error: {' '.join(str(exc).split())}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("data_prep: interrupted\n")
        return 130
    return 0
