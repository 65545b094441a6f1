"""GPU slots of a local machine (workflow/scripts/engine_job.py), with fake device ids: no GPU needed.

Each train job locks one slot and runs with CUDA_VISIBLE_DEVICES set to the slot's device. Two concurrent
jobs never share a device unless `runs_per_gpu` > 1 asks for it; a killed job's slot is free again.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from engine_job import acquire_slot, main, parse_slots, plan_slots, scheduler_gave_gpu

from tests.workflow.helpers import REPO

SCRIPT = REPO / "workflow" / "scripts" / "engine_job.py"
# A stand-in for the engine: reports its device and holds the slot for a while.
HOLD = "import os, sys, time; print(os.environ.get('CUDA_VISIBLE_DEVICES'), sys.argv[1:], flush=True); time.sleep({s})"


def test_plan_slots_interleaves_gpus():
    assert plan_slots(["0", "1"], 1) == ["0", "1"]
    assert plan_slots(["0", "1"], 2) == ["0", "1", "0", "1"]
    assert parse_slots("3, 5,") == ["3", "5"]
    with pytest.raises(ValueError):
        plan_slots(["0"], 0)


def test_concurrent_jobs_get_distinct_devices(tmp_path):
    d0, lock0 = acquire_slot(["0", "1"], tmp_path)
    d1, lock1 = acquire_slot(["0", "1"], tmp_path)
    assert {d0, d1} == {"0", "1"}
    with pytest.raises(TimeoutError):  # both GPUs taken: a third job waits, it does not double up
        acquire_slot(["0", "1"], tmp_path, poll_s=0.05, timeout_s=0.2)
    lock0.close()  # the first job ends: its device is free again
    d2, lock2 = acquire_slot(["0", "1"], tmp_path)
    assert d2 == d0
    lock1.close()
    lock2.close()


def test_sharing_only_when_asked(tmp_path):
    slots = plan_slots(["7"], 2)  # runs_per_gpu: 2
    devices = [acquire_slot(slots, tmp_path)[0] for _ in range(2)]
    assert devices == ["7", "7"]


def _start(tmp_path, slots, seconds):
    cmd = [sys.executable, str(SCRIPT), "--slots", slots, "--lock-dir", str(tmp_path / "locks"), "--",
           sys.executable, "-c", HOLD.format(s=seconds)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_processes_hold_their_slot_through_exec(tmp_path):
    """Four engine processes on two fake GPUs at two runs per GPU: each device exactly twice."""
    procs = [_start(tmp_path, "0,1,0,1", 3) for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].split()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert Counter(outs) == {"0": 2, "1": 2}
    # One run per GPU: two processes on two GPUs never share one.
    procs = [_start(tmp_path, "4,5", 3) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].split()[0] for p in procs]
    assert sorted(outs) == ["4", "5"]


def test_killed_job_frees_its_slot(tmp_path):
    victim = _start(tmp_path, "0", 60)
    time.sleep(1.5)  # it holds the only slot now
    with pytest.raises(TimeoutError):
        acquire_slot(["0"], tmp_path / "locks", poll_s=0.05, timeout_s=0.3)
    os.kill(victim.pid, signal.SIGKILL)  # e.g. the OOM killer
    victim.wait(timeout=10)
    device, lock = acquire_slot(["0"], tmp_path / "locks", poll_s=0.05, timeout_s=5)
    assert device == "0"
    lock.close()


def test_device_flag(tmp_path, monkeypatch):
    seen = {}

    def fake_exec(file, args, env):
        seen.update(args=args, env=env)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execvpe", fake_exec)
    for var in ("SLURM_JOB_ID", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit):
        main(["--cpu-device", "cpu", "--", "engine"])
    assert seen["args"] == ["engine", "--device", "cpu"]
    with pytest.raises(SystemExit):
        main(["--slots", "3", "--lock-dir", str(tmp_path), "--", "engine"])
    assert seen["args"] == ["engine", "--device", "cuda"] and seen["env"]["CUDA_VISIBLE_DEVICES"] == "3"
    with pytest.raises(SystemExit):
        main(["--cluster-gpus", "1", "--", "engine"])
    assert seen["args"][-1] == "cuda"
    # SLURM job whose GPU came from --gres (no `gpu` resource): SLURM set CUDA_VISIBLE_DEVICES.
    assert scheduler_gave_gpu({"SLURM_JOB_ID": "5", "CUDA_VISIBLE_DEVICES": "0"})
    assert not scheduler_gave_gpu({"SLURM_JOB_ID": "5"})
    assert not scheduler_gave_gpu({"CUDA_VISIBLE_DEVICES": "0"})  # not a SLURM job: CPU unless slots


def test_gpu_command_of_the_readme_plans_slots(tmp_path):
    """`snakemake --resources gpu=2 --config runs_per_gpu=2`: 4 slots on devices 0 and 1, one per train job."""
    from tests.workflow.helpers import snakemake

    (tmp_path / "resources" / "fmnist").mkdir(parents=True)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"results: {tmp_path / 'results'}\nresources: {tmp_path / 'resources'}\nexperiments: [main]\n"
                   "seeds: [0]\nsubset: {all: {dataset: [femnist], split: [noniid], heterogeneity: [high]}}\n"
                   "datasets: {femnist: {engine: fmnist, budget: 20, partition: {iid: iid, noniid: noniid}}}\n")
    proc = snakemake("--configfile", str(cfg), "--cores", "4", "--resources", "gpu=2", "--config", "runs_per_gpu=2",
                     "--nolock", "-n", f"{tmp_path}/results/tables/main.parquet", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "fedgmr-repro: 4 GPU slots (devices 0,1)" in proc.stdout
    train_resources = [line for line in proc.stdout.splitlines() if "gpu_slot=" in line]
    assert train_resources and all("gpu=0, gpu_slot=1" in line for line in train_resources), train_resources
    cpu = snakemake("--configfile", str(cfg), "--cores", "4", "--nolock", "-n",
                    f"{tmp_path}/results/tables/main.parquet", timeout=300)
    assert "GPU slots" not in cpu.stdout and "gpu_slot=0" in cpu.stdout
