"""The SLURM profile's submissions, checked against stub sbatch/sacct/squeue/sinfo/scontrol on PATH.

The stub sbatch records its command line and returns a job id; the stub sacct reports every job (and every
array task <id>_<k>) FAILED, so Snakemake retries (profile `retries: 2`) with a larger runtime each attempt,
then gives up.
"""

import re
import stat

import grids as G

from tests.workflow.helpers import REPO, snakemake

CONFIG_BASE = G.deep_merge(G.load_yaml(REPO / "config" / "config.yaml"),
                           G.load_yaml(REPO / "profiles" / "demo" / "workflow-config.yaml"))

STUBS = {
    "sbatch": """#!/bin/sh
n=$(($(cat "$STUB_DIR/count" 2>/dev/null || echo 1000) + 1)); echo $n > "$STUB_DIR/count"
echo "$*" >> "$STUB_DIR/sbatch.log"
echo $n
""",
    "sacct": """#!/bin/sh
echo "sacct $*" >> "$STUB_DIR/calls.log"
case "$*" in *JobIdRaw,State*) for i in $(seq 1001 $(cat "$STUB_DIR/count")); do echo "$i|FAILED";
    for t in 1 2 3 4; do echo "${i}_$t|FAILED"; done; done;;
  *Account*) echo "acct";; esac
""",
    "squeue": "#!/bin/sh\necho \"squeue $*\" >> \"$STUB_DIR/calls.log\"\n",
    "sinfo": "#!/bin/sh\nprintf 'PARTITION\\ncpu*\\ngpu\\n'\n",
    "scontrol": "#!/bin/sh\nprintf 'MaxArraySize = 1001\\nMinJobAge = 300\\n'\n",
    "sacctmgr": "#!/bin/sh\necho acct\n",
    "sshare": "#!/bin/sh\necho acct\n",
    "scancel": "#!/bin/sh\nexit 0\n",
}

CONFIG = """
results: {results}
resources: {resources}
experiments: [main]
seeds: [0]
subset:
  all: {{dataset: [femnist], split: [noniid], heterogeneity: [high], method: [fedgmr]}}
  main: {{dataset: [femnist]}}
"""


def _submit(tmp_path, config_text, *extra, timeout=300):
    """Run the SLURM profile against the stubs; return (process, sbatch command lines)."""
    stub_dir = tmp_path / "stub"
    install_stubs(stub_dir)
    (tmp_path / "resources" / "fmnist").mkdir(parents=True)  # prepared data "exists": no prepare job
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config_text.format(results=tmp_path / "results", resources=tmp_path / "resources"))
    proc = snakemake(
        "--workflow-profile", "profiles/slurm", "--configfile", "profiles/demo/workflow-config.yaml", str(cfg),
        "--slurm-init-seconds-before-status-checks", "1", "--nolock", f"{tmp_path}/results/tables/main.parquet",
        *extra,  # last: --set-resources takes every argument after it
        env={"PATH": f"{stub_dir}:{REPO / '.venv' / 'bin'}:/usr/bin:/bin", "STUB_DIR": str(stub_dir)},
        timeout=timeout,
    )
    return proc, (stub_dir / "sbatch.log").read_text().splitlines()


def install_stubs(bin_dir):
    bin_dir.mkdir()
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_profile_submits_with_partition_gpu_and_growing_runtime(tmp_path):
    stub_dir = tmp_path / "stub"
    install_stubs(stub_dir)
    (tmp_path / "resources" / "fmnist").mkdir(parents=True)  # prepared data "exists": no prepare job
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.format(results=tmp_path / "results", resources=tmp_path / "resources"))
    proc = snakemake(
        "--workflow-profile", "profiles/slurm", "--configfile", "profiles/demo/workflow-config.yaml", str(cfg),
        "--slurm-init-seconds-before-status-checks", "1",
        "--jobs", "1", "--nolock", f"{tmp_path}/results/tables/main.parquet",
        env={"PATH": f"{stub_dir}:{REPO / '.venv' / 'bin'}:/usr/bin:/bin", "STUB_DIR": str(stub_dir)},
        timeout=300,
    )
    assert proc.returncode != 0, "every stub job fails, so the workflow must fail"
    calls = (stub_dir / "sbatch.log").read_text().splitlines()
    assert len(calls) == 3, proc.stdout[-3000:]  # first attempt + 2 retries
    for attempt, call in enumerate(calls, start=1):
        assert "-p gpu" in call
        assert "-A acct" in call  # no account in the profile: the plugin's guess from (stub) sacct
        assert "--gpus=1" in call
        assert re.search(rf"-t {120 * attempt}\b", call), call  # config compute.default.runtime x attempt
        assert "--mem 8000" in call
        assert "rule_train" in call
        assert "--checkpoint-dir" not in call  # the engine command runs inside the job, not in sbatch


TWO_RUNS = CONFIG.replace("method: [fedgmr]", "method: [fedgmr, fedavg]") + """
engine: {{device: cpu, threads: 3, gpus: 0}}
"""


def test_training_runs_go_in_as_one_array_with_the_threads_of_the_config(tmp_path):
    """Two train jobs, one sbatch: `--array=1-2`; engine.threads reaches --cpus-per-task (and the engine)."""
    proc, calls = _submit(tmp_path, TWO_RUNS, "--retries", "0", "--jobs", "4")
    assert proc.returncode != 0, "every stub job fails, so the workflow must fail"
    train = [c for c in calls if "rule_train" in c]
    assert len(train) == 1, calls
    call = train[0]
    assert "--array=1-2" in call, call
    assert "--cpus-per-task=3" in call and "--gpus=1" in call and "-p gpu" in call
    # The engine's threads are the run config's run.threads, written by the job from the same config value.
    assert "Submitted array job" in proc.stdout, proc.stdout[-3000:]
    cells = G.build_cells(G.deep_merge(CONFIG_BASE, G.load_yaml(tmp_path / "cfg.yaml")),
                          G.load_grids(REPO / "config" / "experiments", ["main"]))[1]
    assert {raw["run"]["threads"] for raw in cells.values()} == {3}


def test_gres_for_clusters_that_reject_gpus(tmp_path):
    proc, calls = _submit(tmp_path, CONFIG, "--retries", "0", "--jobs", "1",
                          "--set-resources", "train:gres=gpu:1", "train:gpu=0")
    (call,) = [c for c in calls if "rule_train" in c]
    assert "--gres=gpu:1" in call and "--gpus" not in call, call
