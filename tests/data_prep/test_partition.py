"""Partition functions: pinned sizes, hand-checkable properties, and the on-disk round trip."""

import json

import numpy as np
import pytest
import torch

from data_prep import DataError
from data_prep import partition as P

LABELS = (np.arange(1000) * 7) % 10  # 100 samples per class, classes interleaved


def _reference_dirichlet(labels, alpha, n_clients, seed):
    # Independent transcription of reference §2.3 (global numpy RNG seeded, one dirichlet call).
    np.random.seed(seed)
    props = np.random.dirichlet([alpha] * n_clients, labels.max() + 1)
    out = [[] for _ in range(n_clients)]
    for k, fr in enumerate(props):
        idx = np.argwhere(labels == k).flatten()
        for i, piece in enumerate(np.split(idx, (np.cumsum(fr)[:-1] * len(idx)).astype(int))):
            out[i].append(piece)
    return sorted((np.concatenate(o) for o in out), key=len)


def _check_cover(parts, n):
    allidx = np.concatenate(parts)
    assert len(allidx) == n and len(np.unique(allidx)) == n


def test_dirichlet_released_pinned_sizes():
    parts = P.dirichlet(LABELS, 10, 0.6, seed=0)
    assert [len(p) for p in parts] == [42, 55, 65, 74, 92, 106, 110, 130, 159, 167]
    assert [len(p) for p in P.dirichlet(LABELS, 5, 0.1, seed=3)] == [133, 155, 198, 244, 270]
    sizes = [len(p) for p in parts]
    assert sizes == sorted(sizes) and sum(sizes) == 1000
    _check_cover(parts, 1000)
    assert all(p.dtype == np.int64 for p in parts)


def test_dirichlet_released_matches_reference_transcription():
    ref = _reference_dirichlet(LABELS, 0.6, 10, 0)
    ours = P.dirichlet(LABELS, 10, 0.6, seed=0)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_dirichlet_released_keeps_dataset_order_within_class():
    for p in P.dirichlet(LABELS, 10, 0.6, seed=0):
        for k in range(10):
            piece = p[LABELS[p] == k]
            assert np.all(np.diff(piece) > 0)


def test_dirichlet_clean_same_proportions_random_assignment():
    rel = P.dirichlet(LABELS, 10, 0.6, seed=0)
    clean = P.dirichlet(LABELS, 10, 0.6, seed=0, semantics="clean")
    assert sorted(len(p) for p in clean) == [len(p) for p in rel]
    assert [len(p) for p in clean] == [42, 65, 74, 55, 92, 130, 167, 106, 110, 159]
    _check_cover(clean, 1000)
    with pytest.raises(ValueError):
        P.dirichlet(LABELS, 10, 0.6, 0, semantics="other")


def test_dirichlet_deterministic_and_seed_sensitive():
    a = P.dirichlet(LABELS, 10, 0.6, seed=1)
    b = P.dirichlet(LABELS, 10, 0.6, seed=1)
    c = P.dirichlet(LABELS, 10, 0.6, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [len(x) for x in a] != [len(x) for x in c]


def test_iid_drops_remainder_and_matches_torch_randperm():
    parts = P.iid(23, 4, seed=0)
    assert [len(p) for p in parts] == [5, 5, 5, 5]
    perm = torch.randperm(23, generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(np.concatenate(parts), perm[:20])
    assert parts[0][:5].tolist() == [19, 8, 16, 3, 15]


def test_stackoverflow_iid_last_takes_remainder():
    parts = P.stackoverflow_iid(23, 4, seed=0)
    assert [len(p) for p in parts] == [5, 5, 5, 8]
    _check_cover(parts, 23)


def test_natural_blocks_of_writers_femnist_shape():
    rs = np.random.RandomState(0)
    per_writer = rs.randint(1, 5, size=193)
    groups = np.repeat(np.arange(193), per_writer)
    parts = P.natural(groups, 10)
    writers = [np.unique(groups[p]) for p in parts]
    assert [len(w) for w in writers] == [19] * 9 + [22]
    assert writers[0].tolist() == list(range(19)) and writers[9].tolist() == list(range(171, 193))
    _check_cover(parts, len(groups))
    # Contiguous writers in source order give contiguous index ranges.
    assert all(np.all(np.diff(p) == 1) for p in parts)
    with pytest.raises(ValueError):
        P.natural(np.arange(3), 10)


def test_write_read_roundtrip_and_stats(tmp_path):
    parts = P.dirichlet(LABELS, 4, 0.6, seed=0)
    info = P.write_partition(
        parts,
        tmp_path,
        {
            "dataset": "x",
            "scheme": "dirichlet",
            "alpha": 0.6,
            "seed": 0,
            "semantics": "released",
            "dataset_manifest_sha256": "ab",
        },
        labels=LABELS,
        num_classes=10,
    )
    back = P.read_partition(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(parts, back, strict=True))
    js = json.loads((tmp_path / "partition.json").read_text())
    assert js["sizes"] == [len(p) for p in parts] == info["sizes"] and js["num_clients"] == 4
    rows = (tmp_path / "stats.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["client", "samples", "class_0"] and len(rows) == 5
    cells = [list(map(int, r.split(","))) for r in rows[1:]]
    assert all(c[1] == sum(c[2:]) for c in cells)
    assert (tmp_path / "stats.png").stat().st_size > 0
    # Identical input gives an identical file (stable hash for the workflow).
    other = tmp_path / "again"
    P.write_partition(parts, other, {"dataset": "x"}, labels=LABELS)
    assert json.loads((other / "partition.json").read_text())["npz_sha256"] == js["npz_sha256"]


def test_read_partition_refuses_tampered_npz(tmp_path):
    P.write_partition(P.iid(20, 2, 0), tmp_path, {"dataset": "x", "scheme": "iid"})
    P._save_npz_deterministic(tmp_path / "partition.npz", indices=np.arange(20), offsets=np.array([0, 5, 20]))
    with pytest.raises(DataError, match="partition.npz"):
        P.read_partition(tmp_path)
