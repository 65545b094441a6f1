"""Name -> preparer table used by the CLI. Adding a dataset = one module + one line here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Preparer:
    """How to prepare one dataset.

    Attributes:
        name: Dataset name on the command line.
        help: One-line description (shown by ``prepare --help``).
        add_arguments: Adds dataset-specific options to its sub-parser.
        check: Validates the source before anything is written; raises ``SourceMissing``.
        build: Writes the prepared dataset into a (staging) directory and returns the manifest.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    check: Callable[[argparse.Namespace], None]
    build: Callable[[argparse.Namespace, Path], dict[str, Any]]


def preparers() -> dict[str, Preparer]:
    """Return every registered preparer, by name (imported lazily so ``--help`` stays fast)."""
    from . import changelogs, cifar10, femnist, fmnist, imagenet100, stackoverflow, synthetic_cli

    table = [
        femnist.PREPARER,
        cifar10.PREPARER,
        imagenet100.PREPARER,
        stackoverflow.PREPARER,
        fmnist.PREPARER,
        changelogs.PREPARER,
        synthetic_cli.IMAGE,
        synthetic_cli.TEXT,
    ]
    return {p.name: p for p in table}
