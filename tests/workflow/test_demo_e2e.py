"""The demo profile end to end at an even smaller scale: stand-in data are prepared, every grid's runs train,
every table and figure is drawn and the report lists verdicts and cells not run. Then one figure is redrawn
from the tables alone."""

import pandas as pd
import pytest

from tests.workflow.helpers import job_counts, snakemake
from tests.workflow.test_snakemake import PAPER_RULES

TINY = """
results: {root}/results
resources: {root}/resources
subset:
  all: {{dataset: [femnist], split: [noniid], heterogeneity: [high]}}
  main: {{dataset: [femnist, stackoverflow], method: [fedgmr, fedavg, heterofl]}}
  ablation: {{method: [fedgmr, wo_gmr, wo_asyn]}}
  aggregation: {{method: [fedgmr, ga]}}
  cross_method: {{method: [heterofl, heterofl_aux, heterofl_aux_gmr]}}
  patience: {{patience: [1, 2]}}
  motivation: {{split: [iid], fixed_density: [0.05, 1.0]}}
  semantics: {{method: [fedgmr]}}
datasets:
  femnist: {{budget: 30}}
  stackoverflow: {{budget: 20, overrides: {{schedule: {{max_rounds: 4}}, evaluation: {{max_test: 50}}}}}}
run_overrides:
  schedule: {{interval: 1, max_rounds: 6, max_time: 80.0}}
  evaluation: {{max_test: 200}}
"""


@pytest.mark.slow
def test_demo_profile_end_to_end(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.format(root=tmp_path))
    args = ["--workflow-profile", "profiles/demo", "--configfile", "profiles/demo/workflow-config.yaml",
            str(cfg), "--cores", "2"]
    proc = snakemake(*args, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:]
    results = tmp_path / "results"
    counts = job_counts(proc.stdout)
    for rule in PAPER_RULES + ["report_md", "train", "collect", "prepare_data"]:
        assert counts.get(rule, 0) >= 1, (rule, counts)
    for out in PAPER_RULES:
        exts = ("pdf", "png") if out.startswith("fig_") else ("md", "tex", "csv")
        for ext in exts:
            sub = "figures" if out.startswith("fig_") else "tables"
            assert (results / sub / f"{out}.{ext}").stat().st_size > 0, (out, ext)
    main = pd.read_parquet(results / "tables" / "main.parquet")
    assert {"femnist", "stackoverflow"} == set(main["dataset"])
    assert set(main["engine_dataset"]) == {"fmnist", "changelogs"}
    assert main["acc"].between(0, 1).all()
    report = (results / "report.md").read_text()
    assert "## Main comparison" in report and "## Deviations" in report and "## Cells not run" in report
    assert "within spread" in report or "outside spread" in report
    assert "Stand-in data" in report
    # Checkpoints live outside the run directories (not declared outputs); a finished run drops its own.
    assert (results / "checkpoints").is_dir()
    assert not list((results / "runs").glob("*/checkpoint*"))
    assert not list((results / "checkpoints").glob("*/state.pt"))

    # Redraw one figure from the tables alone: nothing else runs.
    (results / "figures" / "fig_ablation.png").unlink()
    again = snakemake(*args, "fig_ablation", "--allowed-rules", "fig_ablation", timeout=300)
    assert again.returncode == 0, again.stdout[-3000:]
    assert job_counts(again.stdout) == {"fig_ablation": 1}
    assert (results / "figures" / "fig_ablation.png").stat().st_size > 0
