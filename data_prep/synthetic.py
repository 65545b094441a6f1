"""Generated datasets for tests and tiny runs: learnable, deterministic, no files needed.

Images are class templates plus noise (a linear model separates them after a few dozen SGD steps); text
comes from a sparse first-order Markov chain (each token has a few likely successors), so next-token
accuracy rises quickly above chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .images import pixel_spec, write_image_dataset
from .manifest import FORMAT_VERSION, PreparedData
from .text import PAD, UNK, chunk_stream, pad_rows

_SEED_OFFSET_IMAGE = 11  # distinct RNG streams per purpose (design §6: RNGs derived from seed and purpose)
_SEED_OFFSET_TEXT = 23


def _image_arrays(
    n_train: int, n_test: int, num_classes: int, shape: tuple[int, ...], seed: int, n_groups: int
) -> dict[str, np.ndarray]:
    rs = np.random.RandomState(seed * 1000 + _SEED_OFFSET_IMAGE)
    templates = rs.uniform(0.0, 1.0, size=(num_classes, *shape))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rs.permutation(np.arange(n) % num_classes).astype(np.int64)
        noise = rs.uniform(0.0, 1.0, size=(n, *shape))
        x = np.clip(0.65 * templates[y] + 0.35 * noise, 0.0, 1.0)
        return np.round(x * 255).astype(np.uint8), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    # Writer-like groups: contiguous, near-equal blocks in sample order (as LEAF concatenates writers).
    train_group = (np.arange(n_train) * n_groups // max(n_train, 1)).astype(np.int64)
    return {
        "train_x": train_x,
        "train_y": train_y,
        "test_x": test_x,
        "test_y": test_y,
        "train_group": train_group,
    }


def make_image(
    n_train: int = 600,
    n_test: int = 200,
    num_classes: int = 10,
    shape: tuple[int, int, int] = (1, 28, 28),
    seed: int = 0,
    n_groups: int = 20,
) -> PreparedData:
    """Generate a learnable image classification dataset in memory.

    Args:
        n_train: Training samples.
        n_test: Test samples.
        num_classes: Classes (balanced, shuffled).
        shape: Image shape [C, H, W].
        seed: Seed.
        n_groups: Writer-like groups over the training set (contiguous blocks) for natural splits.

    Returns:
        The dataset; ``manifest`` has the keys a prepared manifest has, with an empty ``files``.
    """
    a = _image_arrays(n_train, n_test, num_classes, tuple(shape), seed, n_groups)
    pixel = pixel_spec(shape[0], [0.5] * shape[0], [0.5] * shape[0], invert=False)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "dataset": "synthetic_image",
        "task": "image",
        "source": "generated",
        "counts": {"train": n_train, "test": n_test},
        "files": {},
        "params": {"seed": seed, "n_groups": n_groups},
        "num_classes": num_classes,
        "shape": list(shape),
        "pixel": pixel,
        "groups": "writer",
    }
    return PreparedData(
        name="synthetic_image",
        task="image",
        train_x=a["train_x"],
        train_y=a["train_y"],
        test_x=a["test_x"],
        test_y=a["test_y"],
        train_group=a["train_group"],
        test_group=None,
        num_classes=num_classes,
        shape=tuple(shape),
        pixel=pixel,
        manifest=manifest,
    )


def _text_arrays(
    n_train: int, n_test_chunks: int, vocab_size: int, seq_len: int, n_users: int, seed: int, chunk_len: int
) -> tuple[list[list[int]], np.ndarray, list[list[int]]]:
    rs = np.random.RandomState(seed * 1000 + _SEED_OFFSET_TEXT)
    words = np.arange(2, vocab_size)  # never emit <pad> or <unk>
    fanout = min(3, len(words))
    succ = rs.choice(words, size=(vocab_size, fanout))
    probs = np.array([0.7, 0.2, 0.1][:fanout])
    probs /= probs.sum()

    def sentence(length: int) -> list[int]:
        tok = int(rs.choice(words))
        out = [tok]
        for _ in range(length - 1):
            tok = int(succ[tok, rs.choice(fanout, p=probs)])
            out.append(tok)
        return out

    train = [sentence(int(rs.randint(max(2, seq_len // 2), seq_len + 1))) for _ in range(n_train)]
    # Users own contiguous runs of sequences, like TFF users in source order.
    group = (np.arange(n_train) * n_users // max(n_train, 1)).astype(np.int64)
    test: list[list[int]] = []
    while sum(map(len, test)) < n_test_chunks * chunk_len:
        test.append(sentence(seq_len))
    return train, group, test


def make_text(
    n_train: int = 400,
    n_test_chunks: int = 50,
    vocab_size: int = 50,
    seq_len: int = 16,
    n_users: int = 20,
    seed: int = 0,
    chunk_len: int = 21,
) -> PreparedData:
    """Generate a learnable next-token dataset in memory, in the StackOverflow layout.

    Args:
        n_train: Training sequences.
        n_test_chunks: Validation chunks of ``chunk_len`` tokens.
        vocab_size: Vocabulary entries including ``<pad>`` = 0 and ``<unk>`` = 1.
        seq_len: Padded row length (sequence lengths vary between seq_len/2 and seq_len).
        n_users: Users (contiguous blocks of sequences) for natural splits.
        seed: Seed.
        chunk_len: Validation chunk length (21 in the paper).

    Returns:
        The dataset: ``train_x`` int32 [n_train, seq_len], ``test_x`` int32 [n_test_chunks, chunk_len].
    """
    if vocab_size < 3:
        raise ValueError("vocab_size must be at least 3")
    train, group, test = _text_arrays(n_train, n_test_chunks, vocab_size, seq_len, n_users, seed, chunk_len)
    train_x = pad_rows(train, seq_len)
    test_x = chunk_stream(test, chunk_len)[:n_test_chunks]
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "dataset": "synthetic_text",
        "task": "lm",
        "source": "generated",
        "counts": {"train": n_train, "test": len(test_x)},
        "files": {},
        "params": {"seed": seed, "n_users": n_users, "chunk_len": chunk_len},
        "vocab_size": vocab_size,
        "seq_len": seq_len,
        "groups": "user",
    }
    return PreparedData(
        name="synthetic_text",
        task="lm",
        train_x=train_x,
        train_y=None,
        test_x=test_x,
        test_y=None,
        train_group=group,
        test_group=None,
        vocab_size=vocab_size,
        manifest=manifest,
    )


def vocab_tokens(vocab_size: int) -> list[str]:
    """Token strings of the synthetic vocabulary (``w<i>`` after pad and unk)."""
    return [PAD, UNK] + [f"w{i}" for i in range(2, vocab_size)]


def write_image(out: Path, data: PreparedData) -> dict[str, Any]:
    """Write an in-memory image dataset (e.g. from :func:`make_image`) in the prepared layout."""
    return write_image_dataset(
        out,
        dataset=data.name,
        source=data.manifest.get("source", "generated"),
        source_arg=None,
        train_x=data.train_x,
        train_y=data.train_y,
        test_x=data.test_x,
        test_y=data.test_y,
        num_classes=int(data.num_classes),
        shape=tuple(data.shape),
        pixel=data.pixel,
        params=data.manifest.get("params", {}),
        train_group=data.train_group,
        test_group=data.test_group,
        groups=data.manifest.get("groups"),
    )


def write_text(out: Path, data: PreparedData) -> dict[str, Any]:
    """Write an in-memory lm dataset (e.g. from :func:`make_text`) in the prepared layout."""
    from .manifest import write_prepared

    (Path(out) / "vocab.txt").write_text("".join(t + "\n" for t in vocab_tokens(int(data.vocab_size))))
    arrays = {"train_tokens": data.train_x, "train_group": data.train_group, "test_tokens": data.test_x}
    return write_prepared(
        out,
        dataset=data.name,
        task="lm",
        source=data.manifest.get("source", "generated"),
        arrays=arrays,
        params=data.manifest.get("params", {}),
        prewritten=("vocab.txt",),
        extra={"vocab_size": int(data.vocab_size), "seq_len": int(data.train_x.shape[1]), "groups": "user"},
    )
