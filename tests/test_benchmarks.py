"""The GPU cost benchmark runs end to end on the CPU at toy size: both modes, the batched one really
batched (vmap), the speedup column computed from the two rows, and its CSV readable by pandas."""

import re
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]


def test_gpu_cost_compares_sequential_and_batched(tmp_path):
    out = tmp_path / "gpu_cost.csv"
    cmd = [sys.executable, "benchmarks/gpu_cost.py", "--device", "cpu", "--small", "--datasets", "femnist",
           "--rounds", "2", "--width", "0.25", "--backend", "vmap", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.read_csv(out)
    assert list(rows["mode"]) == ["sequential", "batched"]
    assert list(rows["backend"]) == ["sequential", "vmap"]
    seq, bat = rows["s_per_round"]
    assert rows["speedup"].iloc[1] == round(seq / bat, 2) and pd.isna(rows["speedup"].iloc[0])
    assert {"device_name", "git", "date", "command"} <= set(rows.columns)
    assert f"speedup {rows['speedup'].iloc[1]} over sequential" in done.stdout


def test_gpu_cost_rejects_an_unknown_mode_dataset_or_backend():
    for flag, value in (("--modes", "fast"), ("--datasets", "mnist"), ("--backend", "foo")):
        cmd = [sys.executable, "benchmarks/gpu_cost.py", "--device", "cpu", flag, value]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and flag in done.stderr and "Traceback" not in done.stderr, flag


def test_merge_benchmark_alternates_with_another_checkout():
    cmd = [sys.executable, "benchmarks/merge.py", "--uploads", "1,2", "--calls", "1", "--against", str(REPO)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("rule mix, allocator policy ")
    assert [ln.split(":")[0] for ln in lines[1:]] == [
        "1 upload(s), this   ",
        "1 upload(s), against",
        "2 upload(s), this   ",
        "2 upload(s), against",
    ]
    bad = subprocess.run(
        [sys.executable, "benchmarks/merge.py", "--against", "/nonexistent"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "no fedgmr/aggregation.py" in bad.stderr


def test_engine_reports_the_median_of_paired_ratios(tmp_path):
    engine = [sys.executable, "benchmarks/engine.py", "--method", "fedavg", "--rounds", "2", "--threads", "1",
              "--width", "0.25", "--repeat", "3"]
    out = subprocess.run(engine, cwd=REPO, capture_output=True, text=True, timeout=600, check=True).stdout
    walls, floors = (
        [float(v) for v in re.search(rf"{name} ([\d. ]+) s", out).group(1).split()] for name in ("engine", "floor")
    )
    paired = [float(v) for v in re.search(r"paired wall/floor ([\d. ]+) \(", out).group(1).split()]
    assert len(paired) == 3
    for r, w, f in zip(paired, walls, floors):  # seconds print rounded to 0.01
        assert (w - 0.005) / (f + 0.005) - 1e-3 <= r <= (w + 0.005) / (f - 0.005) + 1e-3
    assert out.splitlines()[-1] == f"wall/floor {sorted(paired)[1]:.3f}"

    csv = tmp_path / "methods.csv"
    cmd = [sys.executable, "benchmarks/methods.py", "--methods", "fedavg", "--rounds", "2", "--threads", "1",
           "--repeat", "2", "--out", str(csv)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    row = pd.read_csv(csv).iloc[0]
    ratios = [float(r) for r in row["ratios"].split()]
    assert len(ratios) == 2 and row["wall_over_floor"] == round(statistics.median(ratios), 3)
    assert (row["ratio_min"], row["ratio_max"]) == (min(ratios), max(ratios))


def test_the_interleaved_floor_does_the_runs_own_work(tmp_path):
    """Every engine iteration's steps (by model density) and evaluation forwards, and no more; the loop is
    itself again afterwards."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import engine
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from fedgmr.runner import run
    from fedgmr.simulation import Simulation

    step = Simulation.step
    cfg = engine.config(3, 0.25, batch=False, method="fjord")  # width-sliced: several model densities
    with engine.Interleaved() as inter:
        sim = run(cfg, tmp_path / "run", progress=False)
    assert Simulation.step is step
    # The floor draws its data, weights and dropout from its own copy of torch's random state.
    state = torch.get_rng_state()
    engine.Floor(sim.cfg, sim.data.num_classes).run({1.0: 1}, 1, 10)
    assert torch.equal(torch.get_rng_state(), state)
    c = sim.counters
    assert len(c["steps_by_density"]) > 1
    assert dict(inter.floor.steps) == c["steps_by_density"]
    assert inter.floor.passes == c["eval_passes"] > 0
    assert 0 < inter.excluded and 0 < inter.floor.seconds <= inter.excluded


def test_breakdown_times_the_engine_functions_it_is_given():
    cmd = [sys.executable, "benchmarks/breakdown.py", "--method", "fiarse", "--rounds", "1", "--threads", "1",
           "fedgmr.methods.fiarse:FIARSE._floor_thresholds"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[3:]}
    assert int(rows["fedgmr.simulation:Simulation.step"][0]) >= 2  # rounds 0 and 1, and the last check
    assert int(rows["fedgmr.methods.fiarse_kept:train_kept"][0]) > 0
    assert "fedgmr.methods.fiarse:FIARSE._floor_thresholds" in rows  # a static method, still callable
    bad = subprocess.run([*cmd[:-1], "fedgmr.aggregation:no_such_rule"], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode != 0 and "no_such_rule" in bad.stderr and "Traceback" not in bad.stderr


def test_allocator_benchmark_reads_both_policies(tmp_path):
    out = tmp_path / "allocator.csv"
    cmd = [sys.executable, "benchmarks/allocator.py", "--rounds", "1", "--repeat", "1", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.read_csv(out)
    assert list(rows["policy"]) == ["engine", "system"]
    assert (rows["wall_over_floor"] > 0).all() and (rows["peak_mib"] > 0).all()
