"""The DAG: lint, dry runs of the default, demo and SLURM profiles list every paper target."""

import grids as G
import pytest

from tests.workflow.helpers import REPO, job_counts, snakemake
from tests.workflow.test_slurm_stub import install_stubs

PAPER_RULES = sorted({out for name in G.load_yaml(REPO / "config" / "config.yaml")["experiments"]
                      for out in G.load_yaml(REPO / "config" / "experiments" / f"{name}.yaml")["outputs"]})


def test_paper_outputs_cover_the_issue():
    assert set(PAPER_RULES) >= {
        "table_main", "table_ablation", "table_aggregation", "table_trigger", "table_cross_method",
        "table_patience", "table_semantics", "fig_main", "fig_ablation", "fig_trigger", "fig_cross_method",
        "fig_motivation", "fig_patience"}


def test_lint_is_clean():
    proc = snakemake("--lint", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Congratulations, your workflow is in a good condition" in proc.stdout
    assert "Lints for" not in proc.stdout


@pytest.mark.parametrize("profile", ["default", "demo", "slurm"])
def test_dry_run_lists_every_paper_target(tmp_path, profile):
    env = {}
    if profile == "slurm":
        install_stubs(tmp_path / "stub")
        env = {"PATH": f"{tmp_path / 'stub'}:{REPO / '.venv' / 'bin'}:/usr/bin:/bin", "STUB_DIR": str(tmp_path)}
    # A fresh results root, so that results already on disk do not shorten the plan.
    args = ["--workflow-profile", f"profiles/{profile}", "--dry-run", "--nolock"]
    if profile == "demo":
        args += ["--configfile", "profiles/demo/workflow-config.yaml"]
    proc = snakemake(*args, "--config", f"results={tmp_path / 'results'}", env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = job_counts(proc.stdout)
    for rule in PAPER_RULES + ["report_md", "collect", "train", "all"]:
        assert counts.get(rule, 0) >= 1, (rule, counts)
    assert counts["collect"] == 8
    if profile == "demo":
        assert counts["train"] <= 45  # the demo must stay small
        assert f"{tmp_path}/results/report.md" in proc.stdout
    else:
        assert counts["train"] > 500


def test_one_figure_from_existing_tables_never_retrains(tmp_path):
    """`snakemake fig_X --allowed-rules fig_X` uses the tables as they are: no train, no collect job."""
    from tests.workflow.test_paper_figures import FIXTURES

    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    FIXTURES["fig_ablation"]().to_parquet(results / "tables" / "ablation.parquet")
    (results / "tables" / "ablation.cells.csv").write_text("experiment,status\n")
    common = ["fig_ablation", "--config", f"results={results}", "--cores", "1", "--nolock"]
    proc = snakemake(*common, "--allowed-rules", "fig_ablation", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = job_counts(proc.stdout)
    assert counts == {"fig_ablation": 1}, counts
    assert (results / "figures" / "fig_ablation.pdf").stat().st_size > 1000
    assert (results / "figures" / "fig_ablation.png").stat().st_size > 1000
