"""The SLURM profile's submissions, checked against stub sbatch/sacct/squeue/sinfo/scontrol on PATH.

The stub sbatch records its command line and returns a job id; the stub sacct reports every job FAILED, so
Snakemake retries (profile `retries: 2`) with a larger runtime each attempt, then gives up.
"""

import re
import stat

from tests.workflow.helpers import REPO, snakemake

STUBS = {
    "sbatch": """#!/bin/sh
n=$(($(cat "$STUB_DIR/count" 2>/dev/null || echo 1000) + 1)); echo $n > "$STUB_DIR/count"
echo "$*" >> "$STUB_DIR/sbatch.log"
echo $n
""",
    "sacct": """#!/bin/sh
echo "sacct $*" >> "$STUB_DIR/calls.log"
case "$*" in *JobIdRaw,State*) for i in $(seq 1001 $(cat "$STUB_DIR/count")); do echo "$i|FAILED"; done;;
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
