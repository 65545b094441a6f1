"""Golden results: every registered method in both semantics, on the conformance test's tiny setting,
reproduces the committed ``metrics.csv`` and ``clients.csv`` byte for byte on the sequential path.

The goldens freeze the engine's behaviour before refactors and batching (issue 9). A deliberate
behaviour change regenerates them in a commit of its own that says why:

    FEDGMR_REGENERATE_GOLDENS=1 python -m pytest tests/fedgmr/test_goldens.py

They run on one intra-op thread: CPU kernels may reduce in another order with more threads, and the
goldens must not depend on the machine's core count.
"""

import os
from pathlib import Path

import pytest
import torch

from fedgmr.methods.registry import METHODS
from fedgmr.runner import run
from tests.fedgmr.test_conformance import tiny_cfg

GOLDENS = Path(__file__).parent / "goldens"
FILES = ("metrics.csv", "clients.csv")
REGENERATE = os.environ.get("FEDGMR_REGENERATE_GOLDENS") == "1"


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("semantics", ["released", "clean"])
def test_sequential_path_reproduces_goldens(method, semantics, tmp_path, one_thread):
    cfg = tiny_cfg(method, semantics=semantics)
    cfg["run"]["batch_clients"] = False
    run(cfg, tmp_path, progress=False)
    where = GOLDENS / semantics / method
    if REGENERATE:
        where.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            (where / name).write_bytes((tmp_path / name).read_bytes())
        return
    assert where.is_dir(), f"no golden for {semantics}/{method}: regenerate (see module docstring)"
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (where / name).read_bytes(), f"{semantics}/{method}/{name}"


def test_every_golden_belongs_to_a_registered_method():
    if not GOLDENS.is_dir():
        pytest.skip("goldens not generated yet")
    stale = [p for p in GOLDENS.glob("*/*") if p.name not in METHODS]
    assert not stale, f"goldens of unknown methods: {stale}"
