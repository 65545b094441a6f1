"""StackOverflow next-word prediction data from TFF's SQLite database or its older HDF5 files.

SQLite (current TFF, ``stackoverflow.sqlite`` after lzma decompression): table ``examples`` with columns
``split_name`` ('train' / 'heldout' / 'test'), ``client_id`` and ``serialized_example_proto`` (a
``tf.train.Example`` with bytes features ``tokens``, ``title``, ``tags``, ``type``, ``creation_date`` and
int64 ``score``), and table ``client_metadata`` (``client_id``, ``split_name``, ...). As in TFF's
``SqlClientData``, client ids of a split are the *sorted* distinct ids of ``client_metadata`` and a client's
examples come in row order. HDF5 (older TFF, ``stackoverflow_train.h5`` / ``stackoverflow_test.h5``):
``examples/<client_id>/tokens`` string datasets, client ids sorted.

Paper construction (reference §8.3): the first 6,000 train and first 1,500 test clients, at most 50
sentences each, tokens truncated to 128, first-come vocabulary of 10,000 entries (see :mod:`data_prep.text`);
299,968 train sequences. ``--vocab top10k`` instead uses TFF's frequency vocabulary: ``<pad>``, ``<unk>`` and
the first ``vocab_size - 2`` words of ``stackoverflow.word_count`` (needs ``--word-counts``).
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, SourceMissing
from .registry import Preparer
from .text import Vocab, build_lm
from .tfexample import parse_example

HOW = (
    "get TFF's stackoverflow.sqlite.lzma (tff.simulation.datasets.stackoverflow.load_data() caches it) and "
    "decompress it with unxz, or the older stackoverflow.tar.bz2 with the .h5 files"
)
H5_FILES = {"train": "stackoverflow_train.h5", "test": "stackoverflow_test.h5"}


def _sqlite_path(src: Path) -> Path | None:
    if src.is_file() and src.suffix != ".h5":
        return src
    cand = src / "stackoverflow.sqlite"
    return cand if cand.is_file() else None


class SqliteSource:
    """Reads users and sentences from TFF's SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Read-only URI: preparing must never modify the researcher's copy.
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{path} is not an SQLite database ({exc}); {HOW}") from exc
        if "examples" not in tables:
            raise DataError(f"{path} has no 'examples' table; expected TFF's stackoverflow.sqlite")
        cols = {r[1] for r in self.con.execute("PRAGMA table_info(examples)")}
        missing = {"split_name", "client_id", "serialized_example_proto"} - cols
        if missing:
            raise DataError(f"{path}: table 'examples' lacks columns {sorted(missing)}")
        self.has_meta = "client_metadata" in tables

    def client_ids(self, split: str) -> list[str]:
        table = "client_metadata" if self.has_meta else "examples"
        rows = self.con.execute(f"SELECT DISTINCT client_id FROM {table} WHERE split_name = ?", (split,))
        return sorted(r[0] for r in rows)

    def sentences(self, split: str, client_id: str, limit: int) -> Iterator[str]:
        q = (
            "SELECT serialized_example_proto FROM examples WHERE client_id = ? AND split_name = ? "
            "ORDER BY rowid" + (" LIMIT ?" if limit else "")
        )
        params: tuple = (client_id, split, limit) if limit else (client_id, split)
        for (blob,) in self.con.execute(q, params):
            tokens = parse_example(bytes(blob)).get("tokens")
            if not tokens:
                raise DataError(f"{self.path}: an example of client {client_id} has no 'tokens' feature")
            yield tokens[0].decode("utf-8")


class H5Source:
    """Reads users and sentences from TFF's older HDF5 files."""

    def __init__(self, folder: Path) -> None:
        import h5py

        self.files = {s: h5py.File(folder / f, "r") for s, f in H5_FILES.items()}

    def client_ids(self, split: str) -> list[str]:
        return sorted(self.files[split]["examples"].keys())

    def sentences(self, split: str, client_id: str, limit: int) -> Iterator[str]:
        ds = self.files[split]["examples"][client_id]["tokens"]
        rows = ds[:limit] if limit else ds[:]
        for r in rows:
            yield r.decode("utf-8") if isinstance(r, bytes) else str(r)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-users", type=int, default=6000)
    p.add_argument("--test-users", type=int, default=1500)
    p.add_argument("--test-split", default="test", help="split used for validation ('test' or 'heldout')")
    p.add_argument("--max-per-user", type=int, default=50)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--chunk-len", type=int, default=21)
    p.add_argument("--vocab-size", type=int, default=10000, help="entries including <pad> and <unk>")
    p.add_argument("--vocab", choices=("first-come", "top10k"), default="first-come")
    p.add_argument("--word-counts", default=None, help="TFF's stackoverflow.word_count (for --vocab top10k)")


def _check(a: argparse.Namespace) -> None:
    if not a.source:
        raise SourceMissing("stackoverflow.sqlite", None, "pass --source; " + HOW)
    src = Path(a.source)
    if not src.exists():
        raise SourceMissing(src.name, src.parent, HOW)
    if _sqlite_path(src) is None:
        for f in H5_FILES.values():
            if not (src / f).is_file():
                raise SourceMissing("stackoverflow.sqlite", src, HOW)
    if a.vocab == "top10k" and not (a.word_counts and Path(a.word_counts).is_file()):
        raise SourceMissing(
            "stackoverflow.word_count",
            a.word_counts,
            "get it with tff.simulation.datasets.stackoverflow.load_word_counts()",
        )


def _build(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    src = Path(a.source)
    sq = _sqlite_path(src)
    reader: SqliteSource | H5Source = SqliteSource(sq) if sq else H5Source(src)
    if a.vocab == "top10k":
        words = [ln.split()[0] for ln in Path(a.word_counts).read_text().splitlines() if ln.strip()]
        vocab = Vocab(a.vocab_size, words, frozen=True)
    else:
        vocab = Vocab(a.vocab_size)
    tr_ids = reader.client_ids("train")[: a.train_users]
    te_ids = reader.client_ids(a.test_split)[: a.test_users]

    def users(split: str, ids: list[str]) -> Iterator[tuple[str, Iterator[str]]]:
        for cid in ids:
            yield cid, reader.sentences(split, cid, a.max_per_user)

    return build_lm(
        out,
        dataset="stackoverflow",
        source=f"TFF {'sqlite' if sq else 'hdf5'} {src}",
        source_arg=a.source,
        train_users=users("train", tr_ids),
        test_users=users(a.test_split, te_ids),
        vocab=vocab,
        max_per_user=a.max_per_user,
        seq_len=a.seq_len,
        chunk_len=a.chunk_len,
        params={
            "format": "sqlite" if sq else "hdf5",
            "train_users": a.train_users,
            "test_users": a.test_users,
            "test_split": a.test_split,
            "vocab": a.vocab,
            "vocab_limit": a.vocab_size,
        },
        n_train_users=len(tr_ids),
        n_test_users=len(te_ids),
    )


PREPARER = Preparer("stackoverflow", "StackOverflow from TFF sqlite or hdf5", _args, _check, _build)
