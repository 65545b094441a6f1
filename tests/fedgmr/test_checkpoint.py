"""Checkpoints: plain data only (no code on load), checksummed, keyed on the run id and the prepared data."""

import logging
import pathlib

import pytest
import torch
import yaml

from fedgmr import checkpoint
from fedgmr.cli import main
from fedgmr.config import ConfigError, data_fingerprint, resolve_config, run_id
from fedgmr.simulation import Simulation

from .test_cli import TINY


def _cfg(**schedule):
    raw = yaml.safe_load(TINY.read_text())
    raw["schedule"] |= schedule
    return resolve_config(raw)


@pytest.fixture(scope="module")
def sim_state():
    cfg = _cfg(max_rounds=12)
    sim = Simulation(cfg)
    for _ in range(12):
        sim.step()
    assert sim.tick_index > 0
    return cfg, sim


def test_real_state_round_trips_through_weights_only_load(tmp_path, sim_state):
    cfg, sim = sim_state
    checkpoint.save(tmp_path, cfg, sim.state_dict())
    state = checkpoint.load(tmp_path, cfg)  # weights_only=True inside: a numpy object would fail here
    fresh = Simulation(cfg)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.global_w, sim.global_w)
    assert fresh.net.train_number == sim.net.train_number and fresh.metrics == sim.metrics
    for _ in range(6):  # and it goes on exactly as the original
        sim.step(), fresh.step()
    assert torch.equal(fresh.global_w, sim.global_w)


class _Touch:
    """Unpickling this creates a file: what a crafted state.pt could do under weights_only=False."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def _with_header(payload_path, out_path):
    import hashlib

    body = payload_path.read_bytes()
    out_path.write_bytes(checkpoint._MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


@pytest.mark.parametrize("with_header", [False, True], ids=["bare-pickle", "valid-checksum"])
def test_crafted_checkpoint_runs_no_code(tmp_path, caplog, with_header):
    cfg = _cfg()
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"run_id": run_id(cfg), "data": None, "state": _Touch(target)}, evil)
    ck = tmp_path / "ck"
    ck.mkdir()
    if with_header:  # a correct checksum is easy to forge: only weights_only stops the code
        _with_header(evil, ck / checkpoint.NAME)
    else:
        evil.rename(ck / checkpoint.NAME)
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(ck, cfg) is None
    assert not target.exists()
    assert "starting over" in caplog.text


def _corrupt(kind, path):
    data = path.read_bytes()
    if kind == "flipped":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    elif kind == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x00garbage" * 1000)
    elif kind == "header-only":
        path.write_bytes(data[:80])


@pytest.mark.parametrize("kind", ["flipped", "truncated", "empty", "garbage", "header-only"])
def test_corrupt_checkpoint_is_one_warning_and_ignored(tmp_path, sim_state, caplog, kind):
    cfg, sim = sim_state
    checkpoint.save(tmp_path, cfg, sim.state_dict())
    _corrupt(kind, tmp_path / checkpoint.NAME)
    with caplog.at_level(logging.WARNING, logger="fedgmr.checkpoint"):
        assert checkpoint.load(tmp_path, cfg) is None
    msgs = [r.getMessage() for r in caplog.records if r.name == "fedgmr.checkpoint"]
    assert len(msgs) == 1 and "\n" not in msgs[0] and "starting over" in msgs[0]


def test_cli_starts_over_on_a_corrupt_checkpoint(tmp_path, sim_state, capsys):
    cfg, sim = sim_state
    sets = ["--set", "schedule.max_rounds=12", "--no-progress"]
    assert main(["run", str(TINY), "--out", str(tmp_path / "ref"), *sets]) == 0
    out = tmp_path / "k"
    checkpoint.save(out / "checkpoint", cfg, sim.state_dict())
    _corrupt("flipped", out / "checkpoint" / checkpoint.NAME)
    assert main(["run", str(TINY), "--out", str(out), *sets]) == 0
    assert (out / "clients.csv").read_bytes() == (tmp_path / "ref" / "clients.csv").read_bytes()
    assert _numbers(out / "metrics.csv") == _numbers(tmp_path / "ref" / "metrics.csv")


def _numbers(path):
    import csv

    return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(open(path))]


def test_checkpoint_of_another_config_is_refused(tmp_path, sim_state):
    cfg, sim = sim_state
    checkpoint.save(tmp_path, cfg, sim.state_dict())
    other = _cfg(max_rounds=13)
    with pytest.raises(ConfigError, match="another config"):
        checkpoint.load(tmp_path, other)


def _prepared(root, content):
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(content)
    return str(root)


def _fmnist_cfg(root, threads=None):
    return resolve_config({"dataset": {"name": "fmnist", "root": root}, "run": {"threads": threads}})


def test_run_id_ignores_where_the_data_is_but_not_what_it_is(tmp_path):
    a = _fmnist_cfg(_prepared(tmp_path / "machine1" / "fmnist", '{"files": {"x": "1"}}'))
    b = _fmnist_cfg(_prepared(tmp_path / "elsewhere" / "data", '{"files": {"x": "1"}}'))
    c = _fmnist_cfg(_prepared(tmp_path / "reprepared", '{"files": {"x": "2"}}'))
    assert run_id(a) == run_id(b) == run_id(c)
    assert data_fingerprint(a) == data_fingerprint(b) != data_fingerprint(c)
    assert data_fingerprint(_cfg()) is None  # generated data: the config determines it


def test_threads_are_part_of_the_run_id(tmp_path):
    # CPU results differ with the intra-op thread count (measured: loss in the 6th digit, tiny.yaml 1 vs 2).
    root = _prepared(tmp_path / "d", "{}")
    assert len({run_id(_fmnist_cfg(root, t)) for t in (None, 1, 2)}) == 3


def test_checkpoint_on_re_prepared_data_is_not_resumed(tmp_path, sim_state, caplog):
    _, sim = sim_state
    root = tmp_path / "data"
    _prepared(root, '{"files": {"x": "1"}}')
    cfg = _fmnist_cfg(str(root))
    checkpoint.save(tmp_path / "ck", cfg, sim.state_dict())
    assert checkpoint.load(tmp_path / "ck", cfg) is not None
    (root / "manifest.json").write_text('{"files": {"x": "2"}}')  # prepared again, other data
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(tmp_path / "ck", cfg) is None
    assert "other prepared data" in caplog.text
