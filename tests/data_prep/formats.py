"""Writers of tiny files in each real source format, used by the loader tests.

They follow the published layouts (LEAF json, IDX, CIFAR python pickles, Hugging Face parquet, ILSVRC
folders, TFF SQLite with tf.train.Example protos, TFF HDF5, Debian changelogs), not our own reader.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_leaf(
    root: Path, writers: dict[str, tuple[np.ndarray, list[int]]], split: str, n_files: int = 2
) -> None:
    """LEAF json: x are lists of 784 floats in [0,1] (1 = white), y ints; writers spread over files."""
    (root / split).mkdir(parents=True, exist_ok=True)
    names = list(writers)
    for k in range(n_files):
        chunk = names[k::n_files]
        blob = {
            "users": chunk,
            "num_samples": [len(writers[u][1]) for u in chunk],
            "user_data": {
                u: {"x": writers[u][0].reshape(len(writers[u][1]), 784).tolist(), "y": writers[u][1]}
                for u in chunk
            },
        }
        # LEAF names: all_data_<k>_niid_05_keep_0_<split>_9.json; write k=10 first to test numeric order.
        (root / split / f"all_data_{k * 10}_niid_05_keep_0_{split}_9.json").write_text(json.dumps(blob))


def write_cifar_batches(folder: Path, n_per_batch: int, rs: np.random.RandomState) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rs.randint(0, 256, size=(n_per_batch, 3072)).astype(np.uint8)
        labels = rs.randint(0, 10, size=n_per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": data, "filenames": []}, f, protocol=2)
        out[name] = data
    return out


def example_class():
    """tf.train.Example built from descriptors with the protobuf package (independent of our decoder)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="tfex_test.proto", package="tfex", syntax="proto3")
    F = descriptor_pb2.FieldDescriptorProto

    def msg(name, fields, nested=()):
        m = fdp.message_type.add(name=name) if not nested else nested
        for fname, num, ftype, label, tname in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = tname
        return m

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    msg("BytesList", [("value", 1, F.TYPE_BYTES, rep, None)])
    msg("FloatList", [("value", 1, F.TYPE_FLOAT, rep, None)])
    msg("Int64List", [("value", 1, F.TYPE_INT64, rep, None)])
    feat = msg(
        "Feature",
        [
            ("bytes_list", 1, F.TYPE_MESSAGE, opt, ".tfex.BytesList"),
            ("float_list", 2, F.TYPE_MESSAGE, opt, ".tfex.FloatList"),
            ("int64_list", 3, F.TYPE_MESSAGE, opt, ".tfex.Int64List"),
        ],
    )
    feat.oneof_decl.add(name="kind")
    for f in feat.field:
        f.oneof_index = 0
    features = fdp.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt, type_name=".tfex.Feature")
    features.field.add(
        name="feature", number=1, type=F.TYPE_MESSAGE, label=rep, type_name=".tfex.Features.FeatureEntry"
    )
    msg("Example", [("features", 1, F.TYPE_MESSAGE, opt, ".tfex.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tfex.Example"))


def so_example(cls, tokens: str, score: int = 3) -> bytes:
    ex = cls()
    ex.features.feature["tokens"].bytes_list.value.append(tokens.encode())
    ex.features.feature["title"].bytes_list.value.append(b"a title")
    ex.features.feature["type"].bytes_list.value.append(b"answer")
    ex.features.feature["score"].int64_list.value.append(score)
    return ex.SerializeToString()


def write_so_sqlite(path: Path, clients: dict[str, dict[str, list[str]]]) -> None:
    """TFF layout: examples(split_name, client_id, serialized_example_proto) + client_metadata."""
    cls = example_class()
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE examples (split_name TEXT NOT NULL, client_id TEXT NOT NULL, "
        "serialized_example_proto BLOB NOT NULL)"
    )
    con.execute(
        "CREATE TABLE client_metadata (client_id TEXT NOT NULL, split_name TEXT NOT NULL, "
        "num_examples INTEGER NOT NULL)"
    )
    for split, per_client in clients.items():
        for cid, sentences in per_client.items():
            con.execute("INSERT INTO client_metadata VALUES (?, ?, ?)", (cid, split, len(sentences)))
            for s in sentences:
                con.execute("INSERT INTO examples VALUES (?, ?, ?)", (split, cid, so_example(cls, s)))
    con.commit()
    con.close()


def write_so_h5(folder: Path, clients: dict[str, dict[str, list[str]]]) -> None:
    """Older TFF layout: stackoverflow_<split>.h5 with examples/<client_id>/tokens."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    for split, per_client in clients.items():
        name = {
            "train": "stackoverflow_train.h5",
            "test": "stackoverflow_test.h5",
            "heldout": "stackoverflow_held_out.h5",
        }[split]
        with h5py.File(folder / name, "w") as f:
            for cid, sentences in per_client.items():
                g = f.create_group(f"examples/{cid}")
                g.create_dataset(
                    "tokens",
                    data=np.array([s.encode() for s in sentences], dtype=object),
                    dtype=h5py.string_dtype(),
                )
                g.create_dataset(
                    "title", data=np.array([b"t"] * len(sentences), dtype=object), dtype=h5py.string_dtype()
                )


def write_changelog(path: Path, entries: list[tuple[str, list[str]]]) -> None:
    text = ""
    for i, (author, lines) in enumerate(entries):
        text += f"pkg (1.{i}-1) unstable; urgency=medium\n\n"
        text += "".join(f"  * {ln}\n" for ln in lines)
        text += (
            f"\n -- {author} <{author.split()[0].lower()}@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write(text)
