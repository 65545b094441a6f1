"""Start one engine run on the right device: a GPU slot of this machine, the cluster's GPU, or the CPU.

Used by the `train` rule as ``python workflow/scripts/engine_job.py [options] -- <engine command>``.
It appends ``--device`` to the engine command and replaces itself with it (``exec``), so signals and the
exit status are the engine's own.

Local GPU machine (``--slots 0,0,1,1``, from config ``gpu_ids`` x ``runs_per_gpu``): the job takes an
exclusive ``flock`` on one free slot file ``<lock-dir>/slot<k>`` and runs with ``CUDA_VISIBLE_DEVICES`` set
to that slot's device. The lock belongs to the open file, which the exec'd engine inherits, so it is held
exactly as long as the engine lives and is released by the kernel on any exit, kill included: no stale
slots. Snakemake's ``gpu_slot`` resource keeps the number of concurrent jobs at the number of slots, so a
slot is normally free at once; if another workflow on the same lock dir holds them, the job waits.

Cluster (``--cluster-gpus N``, the job's ``gpu`` resource, or a SLURM job whose GPUs came from ``gres``):
SLURM already set ``CUDA_VISIBLE_DEVICES``; the engine runs on ``cuda``. Otherwise on ``--cpu-device``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path


def parse_slots(text: str) -> list[str]:
    """'0,0,1' -> ['0', '0', '1'] (one entry per slot; a device id repeats once per run it may hold)."""
    return [s.strip() for s in text.split(",") if s.strip()]


def plan_slots(gpu_ids: list[str], runs_per_gpu: int) -> list[str]:
    """Slots of a machine: each GPU id ``runs_per_gpu`` times, GPUs interleaved so that jobs spread out."""
    if runs_per_gpu < 1:
        raise ValueError("runs_per_gpu: must be at least 1")
    return [g for _ in range(runs_per_gpu) for g in gpu_ids]


def acquire_slot(slots: list[str], lock_dir: Path, poll_s: float = 2.0, timeout_s: float | None = None):
    """Lock one free slot; return (device id, open lock file). Keep the file open to keep the slot."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        for k, device in enumerate(slots):
            fh = open(lock_dir / f"slot{k}", "a+")  # noqa: SIM115 - held open on purpose (the lock)
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()} {device}\n")
            fh.flush()
            return device, fh
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no free GPU slot in {lock_dir} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def scheduler_gave_gpu(env: dict) -> bool:
    """True inside a SLURM job holding GPUs, also when asked for with `gres` rather than `gpu`."""
    if "SLURM_JOB_ID" not in env:
        return False
    try:
        if int(env.get("SLURM_GPUS_ON_NODE", "0") or 0) > 0:
            return True
    except ValueError:
        pass
    return env.get("CUDA_VISIBLE_DEVICES", "").strip() not in ("", "-1", "NoDevFiles")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: engine_job.py [options] -- ENGINE COMMAND", file=sys.stderr)
        return 2
    cut = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", default="", help="local GPU slots, e.g. 0,0,1,1 (empty: no local GPUs)")
    p.add_argument("--lock-dir", type=Path, default=Path(".gpu_slots"))
    p.add_argument("--cluster-gpus", type=int, default=0, help="GPUs the scheduler gave this job")
    p.add_argument("--cpu-device", default="cpu")
    a = p.parse_args(argv[:cut])
    command = argv[cut + 1 :]
    slots = parse_slots(a.slots)
    env = dict(os.environ)
    if slots:
        device, lock = acquire_slot(slots, a.lock_dir)
        os.set_inheritable(lock.fileno(), True)
        env["CUDA_VISIBLE_DEVICES"] = device
        print(f"engine_job: GPU {device} (slot file {lock.name})", file=sys.stderr, flush=True)
        command += ["--device", "cuda"]
    elif a.cluster_gpus > 0 or scheduler_gave_gpu(env):
        command += ["--device", "cuda"]
    else:
        command += ["--device", a.cpu_device]
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main())
