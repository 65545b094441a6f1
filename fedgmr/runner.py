"""Running one simulation to the end: resume from a checkpoint, progress, result files.

``run`` is what ``python -m fedgmr run`` calls: it resumes a killed run from its last checkpoint (or starts
over on a checkpoint it cannot use), steps the loop with a progress bar or plain log lines, checkpoints
every ``run.checkpoint_every`` ticks and writes the result files (``fedgmr.results``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fedgmr import checkpoint, results
from fedgmr.allocator import keep_freed_buffers
from fedgmr.simulation import Simulation

log = logging.getLogger(__name__)


def run(
    cfg: dict, out: Path, checkpoint_dir: Path | None = None, device: str = "cpu", progress: bool = True
) -> Simulation:
    """Run (or resume) one simulation and write its result files into ``out``."""
    from tqdm import tqdm

    from fedgmr import progress as progress_log

    keep_freed_buffers()  # fedgmr.allocator: model-sized buffers reused without page faults
    out = Path(out)
    ckdir = Path(checkpoint_dir) if checkpoint_dir else out / "checkpoint"
    if results.is_complete(out, cfg):
        log.info("%s already holds the complete run %s; nothing to do", out, cfg["method"])
        progress_log.log_existing_summary(out)
        return None
    sim = Simulation(cfg, device)
    state = checkpoint.load(ckdir, cfg)
    if state is not None:
        try:
            sim.load_state_dict(state)
            log.info("resumed from %s at round %d", ckdir, sim.net.train_number[0])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # A checkpoint written by an older engine: say so and start over rather than fail forever.
            log.warning(
                "cannot resume from %s (%s): written by another engine version; starting over", ckdir, exc
            )
            sim = Simulation(cfg, device)
    out.mkdir(parents=True, exist_ok=True)
    results.write_config(out, cfg)
    every = cfg["run"]["checkpoint_every"]
    bar = tqdm(
        total=cfg["schedule"]["max_rounds"],
        initial=min(sim.net.train_number[0], cfg["schedule"]["max_rounds"]),
        disable=not progress,
        unit="round",
        dynamic_ncols=True,
        leave=False,
        desc=cfg["method"],
    )
    t0 = time.perf_counter() - sim.wall_elapsed
    last_saved_tick = sim.tick_index
    while True:
        sim.wall_elapsed = time.perf_counter() - t0
        ticks_before = sim.tick_index
        if not sim.step():
            break
        bar.n = min(sim.net.train_number[0], cfg["schedule"]["max_rounds"])
        if sim.tick_index != ticks_before:
            row = sim.metrics[-1]
            bar.set_postfix(
                t=f"{sim.net.time:.0f}s",
                acc=f"{row['acc']:.3f}",
                dens=f"{row['avg_density']:.3f}",
                refresh=False,
            )
            if sim.tick_index - last_saved_tick >= every:
                checkpoint.save(ckdir, cfg, sim.state_dict())
                results.write_tables(out, sim.metrics, sim.client_rows, sim.timing)
                last_saved_tick = sim.tick_index
                progress_log.log_checkpoint(row, progress_bar=progress)
        bar.update(0)
    bar.close()
    sim.wall_elapsed = time.perf_counter() - t0
    results.write_tables(out, sim.metrics, sim.client_rows, sim.timing)
    results.write_run_info(out, cfg, sim, status="complete")
    checkpoint.remove(ckdir)  # run.json now says "complete": a rerun has nothing to resume
    progress_log.log_summary(sim.metrics, sim.wall_elapsed, out)
    return sim
