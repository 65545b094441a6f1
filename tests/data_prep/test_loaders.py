"""Every source loader on tiny files in the real format, through the CLI entry point."""

import json

import numpy as np
import pytest

from data_prep import DataError, load_prepared
from data_prep.cli import main
from data_prep.tfexample import parse_example

from . import formats


def prep(*argv):
    rc = main(["prepare", *map(str, argv)])
    assert rc == 0
    return load_prepared(argv[argv.index("--out") + 1])


def test_fmnist_idx(tmp_path):
    rs = np.random.RandomState(0)
    src = tmp_path / "src"
    src.mkdir()
    tr_x, te_x = rs.randint(0, 256, (7, 28, 28)), rs.randint(0, 256, (3, 28, 28))
    tr_y, te_y = np.array([0, 1, 2, 3, 4, 5, 9]), np.array([9, 8, 7])
    formats.write_idx(src / "train-images-idx3-ubyte.gz", tr_x)
    formats.write_idx(src / "train-labels-idx1-ubyte.gz", tr_y)
    formats.write_idx(src / "t10k-images-idx3-ubyte", te_x, gz=False)  # plain files are accepted too
    formats.write_idx(src / "t10k-labels-idx1-ubyte", te_y, gz=False)
    p = prep("fmnist", "--out", tmp_path / "out", "--source", src, "--group-size", 3)
    np.testing.assert_array_equal(p.train_x[:, 0], tr_x)
    np.testing.assert_array_equal(p.test_y, te_y)
    assert p.train_group.tolist() == [0, 0, 0, 1, 1, 1, 2] and p.manifest["counts"] == {"train": 7, "test": 3}
    assert p.pixel["invert"] is False and p.num_classes == 10


def _leaf_writers(rs):
    writers = {}
    for w, n in (("f0001_41", 3), ("f0002_12", 2), ("f0003_07", 4)):
        x = rs.randint(0, 256, (n, 28, 28)) / 255.0
        writers[w] = (x, rs.randint(0, 62, n).tolist())
    return writers


def test_femnist_leaf_json(tmp_path):
    rs = np.random.RandomState(1)
    tr, te = _leaf_writers(rs), _leaf_writers(rs)
    formats.write_leaf(tmp_path / "leaf", tr, "train")
    formats.write_leaf(tmp_path / "leaf", te, "test")
    p = prep("femnist", "--out", tmp_path / "out", "--source", tmp_path / "leaf")
    # File all_data_0 holds writers 1 and 3, all_data_10 holds writer 2 (numeric file order).
    order = ["f0001_41", "f0003_07", "f0002_12"]
    x = np.concatenate([tr[w][0] for w in order]).astype(np.float32)
    expected = (np.float32(255) * (np.float32(1) - x)).astype(np.uint8)
    np.testing.assert_array_equal(p.train_x[:, 0], expected)
    assert p.train_y.tolist() == [y for w in order for y in tr[w][1]]
    assert p.train_group.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert p.num_classes == 62 and p.manifest["groups"] == "writer" and len(p.test_y) == 9
    # Background (x = 1) becomes 0 after the stored inversion, as the reference feeds it.
    assert p.manifest["pixel"] == {"invert": False, "mean": [0.0], "std": [1.0]}


def test_femnist_hf_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rs = np.random.RandomState(2)
    n = 30
    imgs = rs.randint(0, 256, (n, 28, 28)).astype(np.uint8)
    writers = [f"w{i % 3}" for i in range(n)]  # 3 writers, 10 samples each, interleaved
    table = pa.table(
        {
            "image": [{"bytes": formats.png_bytes(im), "path": None} for im in imgs],
            "writer_id": writers,
            "character": (np.arange(n) % 62).tolist(),
            "hsf_id": [0] * n,
        }
    )
    (tmp_path / "hf" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "hf" / "data" / "train-00000-of-00001.parquet")
    p = prep("femnist", "--out", tmp_path / "out", "--source", tmp_path / "hf")
    assert p.manifest["counts"] == {"train": 27, "test": 3}  # int(0.9 * 10) = 9 per writer
    assert np.bincount(p.train_group).tolist() == [9, 9, 9] and np.bincount(p.test_group).tolist() == [
        1,
        1,
        1,
    ]
    # Each stored image is 255 - png of a sample of the same writer with the same label.
    for i in range(len(p.train_y)):
        j = int(p.train_y[i])  # label = original index % 62 = original index here
        np.testing.assert_array_equal(p.train_x[i, 0], 255 - imgs[j])
        assert writers[j] == f"w{p.train_group[i]}"
    sub = prep("femnist", "--out", tmp_path / "sub", "--source", tmp_path / "hf", "--writer-fraction", "0.34")
    assert sub.manifest["params"]["writers"] == 1 and len(sub.train_y) == 9


def test_cifar10_torchvision_batches(tmp_path):
    rs = np.random.RandomState(3)
    data = formats.write_cifar_batches(tmp_path / "cifar-10-batches-py", 4, rs)
    p = prep("cifar10", "--out", tmp_path / "out", "--source", tmp_path, "--no-md5")
    assert p.train_x.shape == (20, 3, 32, 32) and p.test_x.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(p.train_x[4:8].reshape(4, -1), data["data_batch_2"])
    assert p.pixel["mean"] == [0.4914, 0.4822, 0.4465] and p.pixel["std"] == [0.2023, 0.1994, 0.201]
    # Without --no-md5 the fake batches fail torchvision's checksums.
    assert main(["prepare", "cifar10", "--out", str(tmp_path / "bad"), "--source", str(tmp_path)]) == 2
    assert not (tmp_path / "bad").exists()


def test_cifar10_hf_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rs = np.random.RandomState(4)
    src = tmp_path / "hf" / "plain_text"
    src.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", 5), ("test", 2)):
        imgs = rs.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8)
        arrays[split] = imgs
        pq.write_table(
            pa.table(
                {
                    "img": [{"bytes": formats.png_bytes(i), "path": None} for i in imgs],
                    "label": list(range(n)),
                }
            ),
            src / f"{split}-00000-of-00001.parquet",
        )
    p = prep("cifar10", "--out", tmp_path / "out", "--source", tmp_path / "hf")
    np.testing.assert_array_equal(p.train_x, arrays["train"].transpose(0, 3, 1, 2))
    assert p.test_y.tolist() == [0, 1]


def _imagenet_tree(root, rs):
    from PIL import Image

    wnids = ["n01440764", "n01443537", "n01484850"]
    (root).mkdir(parents=True)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} thing {i}\n" for i, w in enumerate(wnids)))
    base = root / "ILSVRC" / "Data" / "CLS-LOC"
    for i, w in enumerate(wnids):
        (base / "train" / w).mkdir(parents=True)
        for k in range(i + 1):
            Image.fromarray(rs.randint(0, 256, (20 + k, 30, 3)).astype(np.uint8)).save(
                base / "train" / w / f"{w}_{k}.JPEG"
            )
    (base / "val").mkdir(parents=True)
    rows = ["ImageId,PredictionString"]
    for k, w in enumerate(["n01484850", "n01440764", "n01443537", "n01440764"]):
        img_id = f"ILSVRC2012_val_{k + 1:08d}"
        Image.fromarray(rs.randint(0, 256, (40, 25, 3)).astype(np.uint8)).save(
            base / "val" / f"{img_id}.JPEG"
        )
        rows.append(f"{img_id},{w} 1 2 3 4 {w} 5 6 7 8")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return wnids


def test_imagenet100_folder(tmp_path):
    rs = np.random.RandomState(5)
    wnids = _imagenet_tree(tmp_path / "ilsvrc", rs)
    p = prep(
        "imagenet100",
        "--out",
        tmp_path / "out",
        "--source",
        tmp_path / "ilsvrc",
        "--num-classes",
        2,
        "--size",
        16,
    )
    assert p.train_x.shape == (3, 3, 16, 16) and p.train_y.tolist() == [0, 1, 1]
    assert p.test_y.tolist() == [0, 1, 0]  # val rows of the first 2 classes, sorted by ImageId
    assert (tmp_path / "out" / "classes.txt").read_text().split() == wnids[:2]
    assert "classes.txt" in p.manifest["files"]
    cls = tmp_path / "classes.txt"
    cls.write_text(f"{wnids[2]}\n{wnids[0]}\n")
    q = prep(
        "imagenet100",
        "--out",
        tmp_path / "out2",
        "--source",
        tmp_path / "ilsvrc",
        "--classes",
        cls,
        "--size",
        8,
        "--workers",
        2,
    )
    assert q.train_y.tolist() == [0, 0, 0, 1] and q.test_y.tolist() == [0, 1, 1] and q.num_classes == 2


SO = {
    "train": {"u2": ["b c d", "c d e"], "u1": ["a b c d e f g h i j", "a b", "x"], "u3": ["z z z"]},
    "test": {"t1": ["a q q", "b"], "t0": ["c d"]},
}


@pytest.mark.parametrize("fmt", ["sqlite", "h5"])
def test_stackoverflow_formats(tmp_path, fmt):
    if fmt == "sqlite":
        src = tmp_path / "stackoverflow.sqlite"
        formats.write_so_sqlite(src, SO)
    else:
        src = tmp_path / "h5"
        formats.write_so_h5(src, SO)
    out = tmp_path / "out"
    p = prep(
        "stackoverflow",
        "--out",
        out,
        "--source",
        src,
        "--train-users",
        2,
        "--test-users",
        2,
        "--max-per-user",
        2,
        "--seq-len",
        4,
        "--chunk-len",
        3,
        "--vocab-size",
        9,
    )
    vocab = (out / "vocab.txt").read_text().split("\n")[:-1]
    # Sorted client ids: u1, u2 (u3 cut); u1 keeps 2 sentences truncated to 4 tokens; first-come vocab.
    assert vocab == ["<pad>", "<unk>", "a", "b", "c", "d", "e", "q"]
    assert p.train_x.tolist() == [[2, 3, 4, 5], [2, 3, 0, 0], [3, 4, 5, 0], [4, 5, 6, 0]]
    assert p.train_group.tolist() == [0, 0, 1, 1] and p.vocab_size == 8
    # Test clients t0, t1: stream c d | a q q | b -> [4 5 2] [7 7 3]
    assert p.test_x.tolist() == [[4, 5, 2], [7, 7, 3]]
    assert p.manifest["counts"] == {"train": 4, "test": 2} and p.manifest["groups"] == "user"


def test_stackoverflow_vocab_limit_and_top10k(tmp_path):
    src = tmp_path / "stackoverflow.sqlite"
    formats.write_so_sqlite(src, SO)
    p = prep("stackoverflow", "--out", tmp_path / "o1", "--source", src, "--vocab-size", 4, "--seq-len", 10)
    assert p.vocab_size == 4 and p.train_x[0, :4].tolist() == [2, 3, 1, 1]  # a b then <unk>
    wc = tmp_path / "stackoverflow.word_count"
    wc.write_text("the 100\nc 50\na 10\n")
    q = prep(
        "stackoverflow",
        "--out",
        tmp_path / "o2",
        "--source",
        src,
        "--vocab",
        "top10k",
        "--word-counts",
        wc,
        "--seq-len",
        3,
        "--vocab-size",
        4,
    )
    assert (tmp_path / "o2" / "vocab.txt").read_text().split() == ["<pad>", "<unk>", "the", "c"]
    assert q.train_x[0].tolist() == [1, 1, 3]  # a b c


def test_tfexample_decoder_against_protobuf():
    cls = formats.example_class()
    ex = cls()
    ex.features.feature["tokens"].bytes_list.value.extend([b"hello world", b"x"])
    ex.features.feature["score"].int64_list.value.extend([-3, 2**40])
    ex.features.feature["f"].float_list.value.extend([0.5, -2.0])
    got = parse_example(ex.SerializeToString())
    assert got == {"tokens": [b"hello world", b"x"], "score": [-3, 2**40], "f": [0.5, -2.0]}
    with pytest.raises(DataError):
        parse_example(ex.SerializeToString()[:-3])


def test_changelogs_and_docstring_fallback(tmp_path):
    doc = tmp_path / "doc"
    formats.write_changelog(
        doc / "pkg-a" / "changelog.Debian.gz",
        [
            ("Ann Smith", ["New upstream release.", "Fix FTBFS (Closes: #123)."]),
            ("Bob Jones", ["Rebuild."]),
        ],
    )
    formats.write_changelog(
        doc / "pkg-b" / "changelog.Debian.gz",
        [
            ("Bob Jones", ["Don't crash on start-up.", "Bump Standards-Version."]),
            ("Cy Lee", ["Team upload.", "Update watch file."]),
        ],
    )
    out = tmp_path / "out"
    p = prep("changelogs", "--out", out, "--source", doc, "--test-fraction", "0.34", "--seq-len", 6)
    vocab = (out / "vocab.txt").read_text().split("\n")[:-1]
    assert vocab[2:9] == ["new", "upstream", "release", ".", "fix", "ftbfs", "("]
    assert "don't" in vocab and "start-up" in vocab  # apostrophes and hyphens stay inside words
    assert p.train_group.tolist() == [0, 0, 1, 1, 1] and p.manifest["stats"]["test_users"] == 1
    assert p.manifest["params"]["corpus"] == "changelogs"
    # No changelog under --source: the stdlib-docstring fallback (pointed at a tiny fake stdlib here).
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "alpha.py").write_text(
        '"""Alpha module.\n\nDoes alpha things."""\ndef f():\n    """Return one."""\n'
    )
    (lib / "beta.py").write_text('"""Beta module."""\nclass B:\n    """A beta class."""\n')
    (lib / "gamma.py").write_text('"""Gamma, the third."""\n')
    q = prep(
        "changelogs",
        "--out",
        tmp_path / "doc_out",
        "--source",
        lib,
        "--corpus",
        "docstrings",
        "--min-sentences",
        1,
        "--test-fraction",
        "0.34",
    )
    assert q.manifest["params"]["corpus"] == "docstrings" and q.manifest["stats"]["train_users"] == 2
    assert (tmp_path / "doc_out" / "vocab.txt").read_text().split()[2:5] == ["alpha", "module", "."]


def test_manifest_records_source_and_params(tmp_path):
    p = prep("synthetic_text", "--out", tmp_path / "t", "--n-train", 10, "--vocab-size", 7)
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert m == p.manifest and m["source"] == "generated" and m["vocab_size"] == 7 and m["task"] == "lm"
