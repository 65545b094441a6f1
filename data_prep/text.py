"""The language-model pipeline shared by StackOverflow and its offline stand-in.

Construction (reference §8.3, ``build_stackoverflow_simple.py``): users in source order, at most
``max_per_user`` sentences each, whitespace-split tokens truncated to ``seq_len``, no BOS/EOS. Token ids
come from a vocabulary with ``<pad>`` = 0 and ``<unk>`` = 1 that grows *first-come* while the train users and
then the test users are encoded, until it holds ``vocab_limit`` entries; later new tokens map to ``<unk>``.
Because truncation happens before a token is looked up, tokens past position ``seq_len`` never enter the
vocabulary, exactly as in the reference. Train rows are right-padded with 0 to ``seq_len``. The validation
set is the concatenation of all test sequences' tokens cut into ``chunk_len``-token chunks, tail dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .manifest import write_prepared

log = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """A token -> id table that grows first-come up to ``limit`` entries (``limit`` includes pad and unk).

    Args:
        limit: Maximum number of entries.
        tokens: Initial tokens after ``<pad>`` and ``<unk>``; with ``frozen`` the table never grows
            (the frequency vocabulary of TFF).
        frozen: Do not add unseen tokens.
    """

    def __init__(self, limit: int, tokens: Iterable[str] = (), frozen: bool = False) -> None:
        self.limit = limit
        self.frozen = frozen
        self.tokens: list[str] = [PAD, UNK]
        self.index: dict[str, int] = {PAD: 0, UNK: 1}
        for tok in tokens:
            if len(self.tokens) >= limit:
                break
            if tok not in self.index:
                self.index[tok] = len(self.tokens)
                self.tokens.append(tok)

    def encode(self, words: list[str]) -> list[int]:
        """Map words to ids, adding unseen words while there is room."""
        ids = []
        for w in words:
            i = self.index.get(w)
            if i is None:
                if not self.frozen and len(self.tokens) < self.limit:
                    i = self.index[w] = len(self.tokens)
                    self.tokens.append(w)
                else:
                    i = 1
            ids.append(i)
        return ids

    def __len__(self) -> int:
        return len(self.tokens)


def encode_users(
    users: Iterable[tuple[str, Iterable[str]]],
    vocab: Vocab,
    *,
    max_per_user: int,
    seq_len: int,
    desc: str,
    total: int | None = None,
) -> tuple[list[list[int]], list[int], list[str]]:
    """Encode each user's first ``max_per_user`` sentences.

    Args:
        users: ``(user_id, sentences)`` pairs in source order; sentences are whitespace-tokenised strings.
        vocab: Vocabulary, grown in place.
        max_per_user: Sentence cap per user (0 = no cap).
        seq_len: Token cap per sentence.
        desc: Progress-bar label.
        total: Number of users, for the progress bar.

    Returns:
        Sequences, the user index of each sequence, and the user ids in order.
    """
    seqs: list[list[int]] = []
    owner: list[int] = []
    ids: list[str] = []
    for uid, sentences in tqdm(users, desc=desc, total=total, unit="user", leave=False):
        u = len(ids)
        ids.append(uid)
        for k, sentence in enumerate(sentences):
            if max_per_user and k >= max_per_user:
                break
            seqs.append(vocab.encode(sentence.split()[:seq_len]))
            owner.append(u)
    return seqs, owner, ids


def pad_rows(seqs: list[list[int]], seq_len: int) -> np.ndarray:
    """Right-pad sequences with 0 into an int32 [N, seq_len] array."""
    out = np.zeros((len(seqs), seq_len), dtype=np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def chunk_stream(seqs: list[list[int]], chunk_len: int) -> np.ndarray:
    """Concatenate sequences into one stream and cut it into ``chunk_len`` chunks, dropping the tail."""
    stream = np.fromiter((t for s in seqs for t in s), dtype=np.int32)
    n = len(stream) // chunk_len
    return stream[: n * chunk_len].reshape(n, chunk_len)


def build_lm(
    out: Path,
    *,
    dataset: str,
    source: str,
    source_arg: str | None,
    train_users: Iterator[tuple[str, Iterable[str]]],
    test_users: Iterator[tuple[str, Iterable[str]]],
    vocab: Vocab,
    max_per_user: int,
    seq_len: int,
    chunk_len: int,
    params: dict[str, Any],
    n_train_users: int | None = None,
    n_test_users: int | None = None,
    groups: str = "user",
) -> dict[str, Any]:
    """Encode train then test users, and write the lm arrays, ``vocab.txt`` and the manifest.

    Returns:
        The manifest dictionary.
    """
    tr, tr_owner, tr_ids = encode_users(
        train_users,
        vocab,
        max_per_user=max_per_user,
        seq_len=seq_len,
        desc="train users",
        total=n_train_users,
    )
    te, _, te_ids = encode_users(
        test_users, vocab, max_per_user=max_per_user, seq_len=seq_len, desc="test users", total=n_test_users
    )
    arrays = {
        "train_tokens": pad_rows(tr, seq_len),
        "train_group": np.asarray(tr_owner, dtype=np.int64),
        "test_tokens": chunk_stream(te, chunk_len),
    }
    (Path(out) / "vocab.txt").write_text("".join(t + "\n" for t in vocab.tokens))
    stats = {
        "train_users": len(tr_ids),
        "test_users": len(te_ids),
        "test_sequences": len(te),
        "test_stream_tokens": int(sum(len(s) for s in te)),
    }
    log.info("%s: %d train sequences, %s, vocab %d", dataset, len(tr), stats, len(vocab))
    return write_prepared(
        out,
        dataset=dataset,
        task="lm",
        source=source,
        source_arg=source_arg,
        arrays=arrays,
        params={**params, "seq_len": seq_len, "chunk_len": chunk_len, "max_per_user": max_per_user},
        prewritten=("vocab.txt",),
        extra={"vocab_size": len(vocab), "seq_len": seq_len, "groups": groups, "stats": stats},
    )
