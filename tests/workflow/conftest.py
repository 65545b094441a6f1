"""Workflow tests: importing the helpers puts workflow/lib, workflow/scripts and paper_figures on sys.path."""

import os
import subprocess
import sys

import pytest

from tests.workflow import helpers  # noqa: F401
from tests.workflow.helpers import REPO

FMNIST_SOURCE = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def fmnist_data(tmp_path_factory):
    """A prepared Fashion-MNIST stand-in: the repository's ``resources/fmnist`` when `make demo` made one,
    else prepared once per session from Debian's dataset-fashion-mnist (which `.ci/run` installs)."""
    here = REPO / "resources" / "fmnist"
    if (here / "manifest.json").is_file():
        return here
    if not os.path.isdir(FMNIST_SOURCE):
        pytest.skip("needs Debian's dataset-fashion-mnist (or a prepared resources/fmnist)")
    out = tmp_path_factory.mktemp("stand-in") / "fmnist"
    proc = subprocess.run(
        [sys.executable, "-m", "data_prep", "prepare", "fmnist", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out
