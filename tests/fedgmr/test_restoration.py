"""Hand-driven score sequences through GMR (reference §5, B8, B13).

Ticks are numbered from 0 (the n-th ``on_tick`` call). Scores are chosen so that each global score
differs from the previous one (the global monitor ignores repeated scores).
"""

from __future__ import annotations

import random

import pytest

from fedgmr.restoration import Restoration, RestorationConfig


def events(r: Restoration, kind: str | None = None) -> list[tuple]:
    return [(e["tick"], e["client"], e["old"], e["new"]) for e in r.events if kind in (None, e["kind"])]


def drive(r: Restoration, global_scores: list[float], client_scores: list[list[float]] | None = None):
    """Feed one tick per global score (time = tick index); return the changed clients per tick."""
    out = []
    for t, g in enumerate(global_scores):
        out.append(r.on_tick(float(t), g, None if client_scores is None else client_scores[t]))
    return out


def test_first_global_restoration_needs_2p_then_skips_p_minus_1_ticks():
    cfg = RestorationConfig(recover=True, client_triggers=False, patience=2)
    r = Restoration(cfg, [0.05, 0.1, 1.0], min_density=0.02)
    # t0 sets best 0.5. t1 (0.4) counter 1, t2 (0.3) counter 2 = P: begin_save opens, counter -> 0.
    # t3 counter 1, t4 counter 2 -> exhausted -> rho_min 0.02 -> 0.05 (no client changes), wait = 2.
    # t5: wait 1 > 0, GMR skipped (its 0.9 is never seen). t6: best re-initialised at 0.2.
    # t7 (0.1) counter 1, t8 (0.15) counter 2 -> exhausted -> 0.05 -> 0.1: client 0 floored.
    changed = drive(r, [0.5, 0.4, 0.3, 0.4, 0.3, 0.9, 0.2, 0.1, 0.15])
    assert events(r, "global") == [(4, None, 0.02, 0.05), (8, None, 0.05, 0.1)]
    assert changed == [[], [], [], [], [], [], [], [], [0]]
    assert events(r, "floor") == [(8, 0, 0.05, 0.1)]
    assert r.densities == [0.1, 0.1, 1.0]
    assert r.rho_min == 0.1


def test_skip_lasts_p_minus_1_ticks_for_p3():
    cfg = RestorationConfig(recover=True, client_triggers=False, patience=3)
    r = Restoration(cfg, [0.05, 1.0], min_density=0.02)
    # t0 best; t1-t3 open begin_save; t4-t6 -> restoration at t6 (wait 3, then 2 after the tick).
    # t7, t8 skipped (the 0.99s would otherwise become the best); t9 re-initialises at 0.5;
    # t10-t12 non-improving -> second restoration at t12.
    scores = [0.9, 0.8, 0.7, 0.8, 0.7, 0.8, 0.7, 0.99, 0.98, 0.5, 0.4, 0.3, 0.4]
    drive(r, scores)
    assert [e[0] for e in events(r, "global")] == [6, 12]
    assert r.rho_min == 0.1


def test_repeated_global_score_is_ignored():
    cfg = RestorationConfig(recover=True, client_triggers=False, patience=1)
    r = Restoration(cfg, [0.05], min_density=0.02)
    drive(r, [0.5] * 20)
    assert r.events == [] and not r.begin_save


def test_client_promotion_and_2p_cooldown_not_gated_by_begin_save():
    cfg = RestorationConfig(recover=True, client_triggers=True, patience=2)
    r = Restoration(cfg, [0.05, 0.2], min_density=0.02)
    n = 9
    glob = [0.1 * (t + 1) for t in range(n)]  # always improving: begin_save never opens
    clients = [[0.3, 0.1 * (t + 1)] for t in range(n)]  # client 0 stale (B13), client 1 improving
    # Client 0: t0 best 0.3; t1 counter 1; t2 counter 2 -> promoted 0.05 -> 0.1, cool-down 4, best reset.
    # t3 cool-down 3, best re-set (counter 0); t4 counter 1 (cd 2); t5 counter 2, exhausted but cd 1;
    # t6 cd 0, counter 3 -> promoted 0.1 -> 0.2: 2P = 4 ticks after the first promotion.
    changed = drive(r, glob, clients)
    assert events(r, "client") == [(2, 0, 0.05, 0.1), (6, 0, 0.1, 0.2)]
    assert changed[2] == [0] and changed[6] == [0]
    assert not r.begin_save
    assert r.densities == [0.2, 0.2]


def test_unmeasured_client_score_none_leaves_its_monitor_alone():
    """Clean B13: a client without a fresh score (None) is never promoted for being stale."""
    cfg = RestorationConfig(recover=True, client_triggers=True, patience=2)
    r = Restoration(cfg, [0.05, 0.2], min_density=0.02)
    n = 9
    glob = [0.1 * (t + 1) for t in range(n)]
    # Client 0 reported once (0.3) and then never again; as released (stale 0.3 re-read) it would be
    # promoted at t2 (see the test above). Client 1 reports a falling score every tick: promoted at t2.
    clients = [[0.3 if t == 0 else None, 0.9 - 0.1 * t] for t in range(n)]
    drive(r, glob, clients)
    assert [e[1] for e in events(r, "client")] == [1, 1]
    assert r.densities[0] == 0.05


def test_client_promotions_gated_on_begin_save_when_asked():
    cfg = RestorationConfig(recover=True, client_triggers=True, patience=2, gate_clients_on_begin_save=True)
    r = Restoration(cfg, [0.05, 0.2], min_density=0.02)
    glob = [0.1 * (t + 1) for t in range(9)]
    drive(r, glob, [[0.3, 0.1 * (t + 1)] for t in range(9)])
    assert r.events == [] and r.densities == [0.05, 0.2]


def test_global_step_skips_client_promotions_during_wait():
    cfg = RestorationConfig(recover=True, client_triggers=True, patience=2)
    r = Restoration(cfg, [0.05, 1.0], min_density=0.02)
    # Global: restoration 0.02 -> 0.05 at t4 (as in the first test). Client 0 improves until t4, then
    # stays at 0.5. At t4 the global step clears every best score, t5 is skipped, t6 re-initialises
    # client 0 at 0.5, t7 and t8 count -> promotion at t8 (t7 if t5 were not skipped).
    glob = [0.5, 0.4, 0.3, 0.4, 0.3, 0.2, 0.1, 0.2, 0.1]
    clients = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4], [0.5, 0.5]] + [
        [0.5, 0.6 + 0.01 * t] for t in range(4)
    ]
    drive(r, glob, clients)
    assert events(r, "global") == [(4, None, 0.02, 0.05)]
    assert events(r, "client") == [(8, 0, 0.05, 0.1)]


def test_flooring_resets_monitors_when_client_triggers():
    cfg = RestorationConfig(recover=True, client_triggers=True, patience=2)
    r = Restoration(cfg, [0.05, 1.0], min_density=0.05)
    # Global restoration at t4: 0.05 -> 0.1 floors client 0 (clients improve, never promoted).
    changed = drive(r, [0.5, 0.4, 0.3, 0.4, 0.3], [[0.1 * (t + 1), 0.1 * (t + 1)] for t in range(5)])
    assert changed[4] == [0]
    assert r.densities == [0.1, 1.0]
    glob, c0, c1 = r.monitors
    # Global and client 0: counter 0, best below any score; client 1 only lost its best (global step).
    assert (glob.counter, glob.best) == (0, float("-inf"))
    assert (c0.counter, c0.best) == (0, float("-inf"))
    assert c1.best is None


def test_time_mode_schedule():
    cfg = RestorationConfig(recover=True, client_triggers=True, patience=2, trigger="time", time_total=100.0)
    r = Restoration(cfg, [0.05, 0.2, 1.0], min_density=0.02)
    floors = []
    for t in [0.0, 10.0, 19.99, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0, 120.0]:
        r.on_tick(t, 0.5, [0.1, 0.1, 0.1])  # constant scores: no ES / client promotion in time mode
        floors.append(r.rho_min)
    # 0.05 is skipped (stage 0 is where 0.02 starts): 0.1 at 0.2T, 0.2 at 0.4T, 0.5 at 0.6T, 1 at 0.8T.
    assert floors == [0.02, 0.02, 0.02, 0.1, 0.1, 0.2, 0.5, 1.0, 1.0, 1.0]
    assert events(r, "client") == []
    assert [(e[0], e[2], e[3]) for e in events(r, "time")] == [
        (3, 0.02, 0.1),
        (5, 0.1, 0.2),
        (6, 0.2, 0.5),
        (7, 0.5, 1.0),
    ]
    assert r.densities == [1.0, 1.0, 1.0]


def test_time_mode_crossing_two_points_at_once():
    cfg = RestorationConfig(recover=True, client_triggers=False, patience=2, trigger="time", time_total=100.0)
    r = Restoration(cfg, [0.05, 0.1], min_density=0.02)
    assert r.on_tick(45.0, 0.5) == [0, 1]  # 0.2T and 0.4T crossed: stage 2 -> 0.2
    assert r.rho_min == 0.2 and r.densities == [0.2, 0.2]


def test_time_mode_starts_from_the_stage_of_the_initial_floor():
    cfg = RestorationConfig(recover=True, client_triggers=False, patience=2, trigger="time", time_total=100.0)
    r = Restoration(cfg, [0.1, 0.5], min_density=0.1)
    # rho_min = 0.1 already reaches ladder stage 1, so 0.2T moves it to stage 2 = 0.2 (not to 0.1).
    assert r.on_tick(20.0, 0.5) == [0]
    assert r.rho_min == 0.2


def test_fixed_step_mode():
    cfg = RestorationConfig(recover=True, client_triggers=False, patience=1, step_mode="fixed", step=0.1)
    r = Restoration(cfg, [0.05, 1.0], min_density=0.02)
    # P = 1: t1 opens begin_save, t2 restores 0.02 -> 0.12 (wait 1 -> 0 at the end of t2, no skip);
    # t3 re-initialises, t4 restores 0.12 -> 0.22.
    drive(r, [0.5, 0.4, 0.3, 0.2, 0.1])
    assert [e[0] for e in events(r, "global")] == [2, 4]
    assert r.rho_min == pytest.approx(0.22)
    assert r.densities[0] == pytest.approx(0.22)
    assert r.next_density(0.95) == 1.0


def test_ladder_next_value():
    r = Restoration(RestorationConfig(recover=True, client_triggers=False, patience=1), [0.05], 0.02)
    assert r.next_density(0.02) == 0.05
    assert r.next_density(0.05) == 0.1
    assert r.next_density(0.045) == 0.1  # 0.05 is not > 0.045 + 0.01
    assert r.next_density(0.12) == 0.2
    assert r.next_density(0.195) == 0.5
    assert r.next_density(0.5) == 1.0
    assert r.next_density(1.0) == 1.0


def test_global_patience_raised_without_recover():
    cfg = RestorationConfig(recover=False, client_triggers=False, patience=2)
    r = Restoration(cfg, [0.05], min_density=0.02)
    # Global patience min(5*2, 50) = 10. t2 opens begin_save (that gate uses P = 2); then 10 more
    # non-improving ticks: exhausted at t12.
    drive(r, [1.0 - 0.01 * t for t in range(12)])
    assert not r.stop_requested
    r.on_tick(12.0, 0.5)
    assert r.stop_requested
    assert r.events == [] and r.rho_min == 0.02
    assert r.monitors[0].patience == 10
    r2 = Restoration(RestorationConfig(recover=False, client_triggers=False, patience=20), [0.05], 0.02)
    r2.on_tick(0.0, 0.5)
    assert r2.monitors[0].patience == 50


def test_freeze_after_global_b8():
    scores = [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02, 0.01]
    cfg = RestorationConfig(recover=True, client_triggers=False, patience=1)
    fixed = Restoration(cfg, [0.05, 1.0], 0.02)
    drive(fixed, scores)
    frozen = Restoration(
        RestorationConfig(recover=True, client_triggers=False, patience=1, freeze_after_global=True),
        [0.05, 1.0],
        0.02,
    )
    drive(frozen, scores)
    # P = 1: restorations every second tick from t2 when wait is decremented; frozen after the first.
    assert [e[0] for e in events(fixed, "global")] == [2, 4, 6, 8]
    assert [e[0] for e in events(frozen, "global")] == [2]


def test_densities_never_decrease_and_state_round_trip():
    rng = random.Random(0)
    cfg = RestorationConfig(recover=True, client_triggers=True, patience=2, trigger="mixed", time_total=300.0)
    r = Restoration(cfg, [1.0, 0.5, 0.2, 0.1, 0.05], min_density=0.02)
    seq = [(round(rng.random(), 2), [round(rng.random(), 1) for _ in range(5)]) for _ in range(300)]
    prev = list(r.densities), r.rho_min
    for t, (g, cs) in enumerate(seq[:150]):
        r.on_tick(float(t), g, cs)
        assert all(b >= a for a, b in zip(prev[0], r.densities)) and r.rho_min >= prev[1]
        prev = list(r.densities), r.rho_min
    clone = Restoration(cfg, [1.0, 0.5, 0.2, 0.1, 0.05], min_density=0.02)
    clone.load_state_dict(r.state_dict())
    for t, (g, cs) in enumerate(seq[150:], start=150):
        assert r.on_tick(float(t), g, cs) == clone.on_tick(float(t), g, cs)
        assert all(b >= a for a, b in zip(prev[0], r.densities)) and r.rho_min >= prev[1]
        prev = list(r.densities), r.rho_min
    assert r.state_dict() == clone.state_dict()
    assert events(r, "client")  # the random sequence did promote clients
    assert r.densities == [1.0] * 5


def test_config_validation():
    with pytest.raises(ValueError):
        RestorationConfig(recover=True, client_triggers=False, patience=0)
    with pytest.raises(ValueError):
        RestorationConfig(recover=True, client_triggers=False, patience=1, trigger="time")  # no time_total
    with pytest.raises(ValueError):
        RestorationConfig(recover=True, client_triggers=False, patience=1, step_mode="legacy")
    r = Restoration(RestorationConfig(recover=True, client_triggers=True, patience=1), [0.05], 0.02)
    with pytest.raises(ValueError):
        r.on_tick(0.0, 0.5, None)
