"""Debian changelogs: the offline stand-in for StackOverflow (users writing short technical sentences).

Source: every ``<source>/*/changelog.Debian.gz`` (default ``/usr/share/doc``), files in sorted path order,
entries in file order. An entry runs from its ``package (version) dist; urgency=...`` header to its trailer
line `` -- Name <email>  date``; the trailer's Name is the *user*, and each non-empty text line of the entry
(leading ``*``/``-``/``+`` bullets removed) is one *sentence*. Lines are normalised like TFF's StackOverflow
text: lower-cased, non-ASCII dropped, punctuation split into its own tokens except inside words
(apostrophes, hyphens). Users are numbered in order of first appearance; those with fewer than
``--min-sentences`` sentences are dropped; the first ``1 - --test-fraction`` of the remaining users (in that
order) are train users and the rest test users, mirroring StackOverflow's disjoint train/test client lists.
Then the StackOverflow pipeline applies unchanged (:mod:`data_prep.text`: at most 50 sentences per user,
128 tokens, first-come vocabulary of 10,000 entries, 21-token validation chunks).

Fallback when no changelog exists (``--corpus docstrings`` forces it): the docstrings of the Python standard
library's ``.py`` files, parsed with ``ast`` (nothing is imported), one user per module (sorted by path),
each non-empty docstring line a sentence.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import logging
import re
import sysconfig
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .errors import SourceMissing
from .registry import Preparer
from .text import Vocab, build_lm

log = logging.getLogger(__name__)

DEFAULT_DOC = Path("/usr/share/doc")
_HEADER = re.compile(r"^\S.*\(.*\).*;")
_TRAILER = re.compile(r"^ -- (?P<name>.*?)\s*<[^>]*>")
_TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*|[^\sa-z0-9]")
_BULLET = re.compile(r"^\s*[*+\-]+\s*")


def normalise(line: str) -> str:
    """Lower-case, drop non-ASCII and split punctuation off words; returns space-joined tokens."""
    text = line.lower().encode("ascii", "ignore").decode("ascii")
    return " ".join(_TOKEN.findall(text))


def parse_changelog(text: str) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(author, sentences)`` for each entry of a Debian changelog."""
    body: list[str] = []
    in_entry = False
    for line in text.splitlines():
        if _HEADER.match(line):
            body, in_entry = [], True
            continue
        m = _TRAILER.match(line)
        if m and in_entry:
            sentences = [s for s in (normalise(_BULLET.sub("", ln)) for ln in body) if s]
            yield m.group("name").strip(), sentences
            body, in_entry = [], False
            continue
        if in_entry and line.strip():
            body.append(line)


def read_changelogs(root: Path) -> dict[str, list[str]]:
    """Collect sentences per author over all ``*/changelog.Debian.gz`` under ``root``, in first-seen order."""
    users: dict[str, list[str]] = {}
    files = sorted(root.glob("*/changelog.Debian.gz"))
    for f in tqdm(files, desc="changelogs", unit="file", leave=False):
        try:
            with gzip.open(f, "rt", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except (OSError, EOFError, zlib.error) as exc:
            log.warning("skipping unreadable %s: %s", f, exc)
            continue
        for author, sentences in parse_changelog(text):
            users.setdefault(author, []).extend(sentences)
    return users


def read_docstrings(root: Path | None = None) -> dict[str, list[str]]:
    """Collect docstring lines per standard-library module (the fallback corpus)."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    users: dict[str, list[str]] = {}
    for f in tqdm(sorted(root.rglob("*.py")), desc="docstrings", unit="file", leave=False):
        rel = f.relative_to(root)
        if {"site-packages", "dist-packages", "test", "tests"} & set(rel.parts):
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        lines: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    lines += [s for s in (normalise(ln) for ln in doc.splitlines()) if s]
        if lines:
            users[".".join(rel.with_suffix("").parts)] = lines
    return users


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--corpus",
        choices=("auto", "changelogs", "docstrings"),
        default="auto",
        help="auto: changelogs if any exist under --source, else stdlib docstrings",
    )
    p.add_argument("--min-sentences", type=int, default=2, help="drop users with fewer sentences")
    p.add_argument("--test-fraction", type=float, default=0.2, help="last share of users used for validation")
    p.add_argument("--train-users", type=int, default=0, help="cap on train users (0 = all)")
    p.add_argument("--test-users", type=int, default=0, help="cap on test users (0 = all)")
    p.add_argument("--max-per-user", type=int, default=50)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--chunk-len", type=int, default=21)
    p.add_argument("--vocab-size", type=int, default=10000)


def _root(a: argparse.Namespace) -> Path:
    return Path(a.source) if a.source else DEFAULT_DOC


def _check(a: argparse.Namespace) -> None:
    root = _root(a)
    if a.corpus == "changelogs" and not any(root.glob("*/changelog.Debian.gz")):
        raise SourceMissing(
            "*/changelog.Debian.gz",
            root,
            "install Debian packages with documentation, or use --corpus docstrings",
        )


def _build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    root = _root(a)
    corpus = a.corpus
    if corpus == "auto":
        corpus = "changelogs" if any(root.glob("*/changelog.Debian.gz")) else "docstrings"
        if corpus == "docstrings":
            log.warning("no changelog.Debian.gz under %s: using the standard-library docstring corpus", root)
    users = (
        read_changelogs(root)
        if corpus == "changelogs"
        else read_docstrings(Path(a.source) if a.source and a.corpus == "docstrings" else None)
    )
    kept = [(u, s) for u, s in users.items() if len(s) >= a.min_sentences]
    n_train = len(kept) - round(a.test_fraction * len(kept))
    train, test = kept[:n_train], kept[n_train:]
    if a.train_users:
        train = train[: a.train_users]
    if a.test_users:
        test = test[: a.test_users]
    where = str(root) if corpus == "changelogs" else "python stdlib docstrings"
    return build_lm(
        out,
        dataset="changelogs",
        source=f"{corpus} ({where})",
        source_arg=a.source,
        train_users=iter(train),
        test_users=iter(test),
        vocab=Vocab(a.vocab_size),
        max_per_user=a.max_per_user,
        seq_len=a.seq_len,
        chunk_len=a.chunk_len,
        params={
            "corpus": corpus,
            "min_sentences": a.min_sentences,
            "test_fraction": a.test_fraction,
            "train_users": a.train_users,
            "test_users": a.test_users,
            "vocab_limit": a.vocab_size,
            "users_found": len(users),
        },
        n_train_users=len(train),
        n_test_users=len(test),
    )


PREPARER = Preparer("changelogs", "Debian changelogs (offline StackOverflow stand-in)", _args, _check, _build)
