"""Dataset sources in the workflow (issue 8, items 13 and 22).

- A dataset that must be prepared and has no source fails while the DAG is built, naming the config key,
  before any job starts (a dry run only warns).
- The source reaches the shell quoted: a space or a `;` in its path neither breaks the rule nor runs a command.
"""

import shutil
from pathlib import Path

import pytest

from tests.workflow.helpers import REPO, snakemake

FMNIST = Path("/usr/share/datasets/fashion-mnist")
CONFIG = """
results: {results}
resources: {resources}
experiments: [main]
seeds: [0]
subset:
  all: {{dataset: [femnist], split: [noniid], heterogeneity: [high], method: [fedgmr]}}
datasets:
  femnist: {{engine: {engine}, source: {source}, partition: {{iid: iid, noniid: noniid}}, budget: 20}}
"""


def _config(tmp_path, engine, source):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(results=tmp_path / "results", resources=tmp_path / "resources", engine=engine,
                                 source="null" if source is None else f'"{source}"'))
    return cfg


def test_missing_source_is_reported_while_the_dag_is_built(tmp_path):
    cfg = _config(tmp_path, "femnist", None)
    proc = snakemake("--configfile", str(cfg), "--cores", "1", "--nolock", timeout=300)
    assert proc.returncode != 0
    assert "datasets.femnist.source is not set" in proc.stdout, proc.stdout[-3000:]
    assert "pass --source" not in proc.stdout
    assert not (tmp_path / "results" / "logs").exists()  # no job ran
    dry = snakemake("--configfile", str(cfg), "--cores", "1", "--nolock", "-n", timeout=300)
    assert dry.returncode == 0 and "datasets.femnist.source is not set" in dry.stdout, dry.stdout[-3000:]


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_source_with_space_and_semicolon_stays_one_argument(tmp_path):
    source = tmp_path / "raw data; touch PWNED"
    shutil.copytree(FMNIST, source)
    cfg = _config(tmp_path, "fmnist", source)
    target = str(tmp_path / "resources" / "fmnist")
    proc = snakemake("--configfile", str(cfg), "--cores", "1", "--nolock", target, env={"OMP_NUM_THREADS": "1"},
                     timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    manifest = (tmp_path / "resources" / "fmnist" / "manifest.json").read_text()
    assert "raw data; touch PWNED" in manifest  # data_prep saw the whole path
    assert not (REPO / "PWNED").exists() and not (tmp_path / "PWNED").exists()  # jobs run in the repository
