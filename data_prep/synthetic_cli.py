"""Command-line preparers for the generated datasets (``prepare synthetic_image|synthetic_text``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import synthetic
from .registry import Preparer


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--shape", type=int, nargs=3, default=[1, 28, 28], metavar=("C", "H", "W"))
    p.add_argument("--n-groups", type=int, default=20, help="writer-like groups for natural splits")
    p.add_argument("--seed", type=int, default=0)


def _image_build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    data = synthetic.make_image(a.n_train, a.n_test, a.num_classes, tuple(a.shape), a.seed, a.n_groups)
    return synthetic.write_image(out, data)


def _text_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-test-chunks", type=int, default=50)
    p.add_argument("--vocab-size", type=int, default=50)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--n-users", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)


def _text_build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    data = synthetic.make_text(a.n_train, a.n_test_chunks, a.vocab_size, a.seq_len, a.n_users, a.seed)
    return synthetic.write_text(out, data)


def _no_check(_: argparse.Namespace) -> None:
    return None


IMAGE = Preparer(
    "synthetic_image", "generated class templates + noise (no source)", _image_args, _no_check, _image_build
)
TEXT = Preparer(
    "synthetic_text",
    "generated Markov-chain text in the StackOverflow layout (no source)",
    _text_args,
    _no_check,
    _text_build,
)
