"""Claims on fixture tables with known answers: one claim of each verdict, the paper column, the CLI, and the
claims file against the grids it names."""

import subprocess
import sys

import claims as C  # noqa: E402  (paper_figures is on sys.path via helpers)
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.workflow.helpers import PAPER_FIGURES, REFERENCE, REPO, fixture_table


def shifted_table(offsets: dict[str, list[float]], seeds=(0, 1, 2, 3), heterogeneity="high",
                  dataset="femnist") -> pd.DataFrame:
    """One run per label and seed with the same curve, shifted by offsets[label][seed] accuracy points."""
    frames = []
    for label, shift in offsets.items():
        t = fixture_table("ablation", [label], datasets=(dataset,), seeds=seeds)
        # Same noise for every label: fixture_table seeds noise by seed only for the first label.
        t["acc"] = t["acc"] + t["seed"].map(dict(zip(seeds, shift))) / 100.0
        t["heterogeneity"] = heterogeneity
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def claim(left, right, relation=">", where=None, paper_tables=()):
    return C.Claim(id=f"{left}_{right}", text=f"{left} {relation} {right}", source="test", experiment="ablation",
                   left={"method_label": left}, right={"method_label": right}, relation=relation,
                   where=where or {"split": "noniid", "heterogeneity": "high"}, paper_tables=list(paper_tables))


def evaluate(claims, table):
    return C.evaluate(claims, {"ablation": table}, C.read_reference(REFERENCE))


def test_each_verdict_on_known_differences():
    table = shifted_table({
        "A": [0, 0, 0, 0],
        "B": [-3.0, -2.5, -3.5, -3.0],  # A − B = +3 ± 0.4: holds
        "C": [2.0, 2.5, 1.5, 2.2],      # A − C < 0: fails
        "D": [1.0, -1.0, 0.5, -0.6],    # straddles 0: inconclusive
    })
    out = evaluate([claim("A", "B"), claim("A", "C"), claim("A", "D"), claim("A", "missing")], table)
    assert list(out["verdict"]) == ["holds", "fails", "inconclusive", "not run"]
    holds = out.iloc[0]
    assert holds["n_seeds"] == 4
    assert holds["mean"] == pytest.approx(3.0, abs=1e-6)
    diffs = np.array([3.0, 2.5, 3.5, 3.0])
    half = 3.182 * diffs.std(ddof=1) / 2  # t(0.975, 3 df) * s / sqrt(4)
    assert holds["ci_low"] == pytest.approx(3.0 - half, abs=1e-6)
    assert holds["differences"] == "+3.00 +2.50 +3.50 +3.00"


def test_fewer_than_three_seeds_is_inconclusive_even_with_a_large_gap():
    table = shifted_table({"A": [0, 0], "B": [-10.0, -11.0]}, seeds=(0, 1))
    row = evaluate([claim("A", "B")], table).iloc[0]
    assert row["verdict"] == "inconclusive" and "2 paired seeds" in row["note"]


def test_a_tie_does_not_make_a_greater_or_equal_claim_hold():
    table = shifted_table({"A": [0, 0, 0], "B": [0.1, -0.1, 0.05]}, seeds=(0, 1, 2))
    assert evaluate([claim("A", "B", ">=")], table).iloc[0]["verdict"] == "inconclusive"


def test_gain_grows_with_heterogeneity_as_a_difference_of_differences():
    high = shifted_table({"FedGMR": [0, 0, 0], "w/o GMR": [-4.0, -5.0, -4.5]}, seeds=(0, 1, 2), dataset="cifar10")
    low = shifted_table({"FedGMR": [0, 0, 0], "w/o GMR": [-1.0, -0.5, -1.5]}, seeds=(0, 1, 2), heterogeneity="low",
                        dataset="cifar10")
    table = pd.concat([high, low], ignore_index=True)
    grows = C.Claim(
        id="grows", text="gain grows", source="test", experiment="ablation", where={"split": "noniid"},
        left={"minus": [{"method_label": "FedGMR", "heterogeneity": "high"},
                        {"method_label": "w/o GMR", "heterogeneity": "high"}]},
        right={"minus": [{"method_label": "FedGMR", "heterogeneity": "low"},
                         {"method_label": "w/o GMR", "heterogeneity": "low"}]},
        paper_tables=["ablation"])
    row = evaluate([grows], table).iloc[0]
    assert row["verdict"] == "holds"
    assert row["mean"] == pytest.approx(3.5, abs=1e-6)
    # Paper, CIFAR-10 ablation (App. A.2): (81.68 − 71.93) − (83.76 − 81.09).
    ref = pd.read_csv(REFERENCE)
    ab = ref[(ref["table"] == "ablation") & (ref["dataset"] == "cifar10") & (ref["split"] == "noniid")]
    val = ab.set_index(["heterogeneity", "method"])["value"]
    expected = (val["high", "FedGMR"] - val["high", "w/o GMR"]) - (val["low", "FedGMR"] - val["low", "w/o GMR"])
    assert row["paper_difference"] == pytest.approx(expected)
    assert expected == pytest.approx((81.68 - 71.93) - (83.76 - 81.09))


def test_paper_difference_comes_from_the_first_listed_table():
    table = shifted_table({"FedGMR": [0, 0, 0], "w/o GMR": [-1, -1, -1]}, seeds=(0, 1, 2))
    # FEMNIST: the main table has FedGMR 81.86, the trigger table w/o GMR 79.51; the ablation table has neither.
    row = evaluate([claim("FedGMR", "w/o GMR", paper_tables=["main", "trigger", "ablation"])], table).iloc[0]
    assert row["paper_difference"] == pytest.approx(81.86 - 79.51)
    row = evaluate([claim("FedGMR", "w/o GMR", paper_tables=["ablation"])], table).iloc[0]
    assert np.isnan(row["paper_difference"])


def test_ambiguous_selector_is_an_error():
    table = shifted_table({"A": [0, 0, 0], "B": [0, 0, 0]}, seeds=(0, 1, 2))
    table = pd.concat([table, table.assign(patience=99)], ignore_index=True)
    with pytest.raises(C.ClaimError, match="several cells"):
        evaluate([claim("A", "B")], table)


def test_cli_writes_csv_and_markdown(tmp_path):
    shifted_table({"FedGMR": [0, 0, 0], "w/o GMR": [-2, -3, -2.5]}, seeds=(0, 1, 2)).to_parquet(
        tmp_path / "ablation.parquet")
    proc = subprocess.run([sys.executable, str(PAPER_FIGURES / "claims.py"), "--claims",
                           str(REPO / "config" / "claims.yaml"), "--tables", str(tmp_path / "ablation.parquet"),
                           "--reference", str(REFERENCE), "--out", str(tmp_path / "claims")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(tmp_path / "claims.csv")
    assert out.loc[out["claim"] == "gmr_beats_wo_gmr", "verdict"].item() == "holds"
    assert (out.loc[out["experiment"] == "main", "verdict"] == "not run").all()
    md = (tmp_path / "claims.md").read_text()
    assert "95 % CI (t)" in md and "**holds**" in md


def test_claims_file_names_existing_grids_and_labels():
    claims = C.load_claims(REPO / "config" / "claims.yaml")
    assert len(claims) >= 20
    labels = {}
    for path in (REPO / "config" / "experiments").glob("*.yaml"):
        grid = yaml.safe_load(path.read_text())
        labels[grid["name"]] = {m["label"] for m in grid["methods"]}

    def selectors(term):
        return [s for t in term["minus"] for s in selectors(t)] if "minus" in term else [term]

    for c in claims:
        assert c.experiment in labels, c.id
        for sel in selectors(c.left) + selectors(c.right):
            if "method_label" in sel:
                assert sel["method_label"] in labels[c.experiment], (c.id, sel)


def test_note_names_the_health_flags_of_the_compared_cells():
    table = shifted_table({"A": [0, 0, 0, 0], "B": [-3.0, -2.5, -3.5, -3.0], "C": [-3.0, -2.5, -3.5, -3.0]})
    # B stuck at chance (Fashion-MNIST-like 10 classes would be 10 %; femnist fixture: 1/62) at every tick.
    table.loc[table["method_label"] == "B", "acc"] = 0.01
    out = evaluate([claim("A", "B"), claim("A", "C")], table)
    flagged, healthy = out.iloc[0], out.iloc[1]
    assert flagged["verdict"] == "holds"  # the verdict stays the interval's ...
    assert "cell flags: B high: at chance" in flagged["note"]  # ... and the note says what it rests on
    assert not isinstance(healthy["note"], str) or "cell flags" not in healthy["note"]
