"""The claim machinery: t-intervals against scipy, three-valued verdicts, anchors, fair tuning, declared predictions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

import descentlab.studies as studies
from descentlab.studies.claims import (
    Anchor,
    Measurement,
    Prediction,
    judge,
    t_interval,
    tune,
    tuning_seeds,
    verdict,
)

P = Prediction("gap", "A beats B.", "seed 003, slide X", "loss(B) - loss(A)", ">", 0.0)


def test_t_interval_matches_scipy():
    xs = [0.3, 0.1, 0.5, 0.2, 0.45]
    mean, lo, hi = t_interval(xs)
    ref = stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs))
    assert mean == pytest.approx(np.mean(xs))
    assert (lo, hi) == pytest.approx(ref)


def test_t_interval_one_value_is_unbounded():
    mean, lo, hi = t_interval([2.0])
    assert mean == 2.0 and lo == -math.inf and hi == math.inf


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.5, 0.6, 0.55], "holds"),
        ([-0.5, -0.6, -0.55], "fails"),
        ([0.5, -0.4, 0.1], "inconclusive"),
        ([0.5], "inconclusive"),  # one seed: no interval
        ([0.5, 0.6, math.nan], "inconclusive"),  # a seed without a value is never dropped silently
    ],
)
def test_judge_three_valued(values, expected):
    out = judge(P, values)
    assert out["verdict"] == expected
    assert out["holds"] == (expected == "holds")
    assert out["n"] == sum(math.isfinite(v) for v in values)
    assert out["claim"] == P.statement and out["source"] == P.source and out["predicted"] == "> 0"


def test_judge_less_than_direction():
    q = Prediction("lower", "A is lower.", "paper", "loss(A)", "<", 1.0)
    assert judge(q, [0.2, 0.3, 0.25])["verdict"] == "holds"
    assert judge(q, [1.2, 1.3, 1.25])["verdict"] == "fails"
    assert judge(q, [0.9, 1.1, 1.0])["verdict"] == "inconclusive"


def test_forced_inconclusive_keeps_reason():
    out = judge(P, Measurement([1.0, 1.1, 1.2], "x", inconclusive="grid does not bracket the optimum"))
    assert out["verdict"] == "inconclusive"
    assert "bracket" in out["inconclusive_reason"]


def test_verdict_rejects_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        verdict("==", 0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="direction"):
        Prediction("x", "s", "src", "q", ">=")


def test_anchor_verdicts_by_equivalence():
    a = Anchor("test MSE at d=1", 0.51, "paper, Fig. 1", tolerance=1.25, reason="stated")
    lo, hi = 0.51 / 1.25, 0.51 * 1.25
    inside = [0.5, 0.52, 0.49, 0.51]
    m = stats.t.interval(0.95, 3, loc=np.mean(inside), scale=stats.sem(inside))
    assert lo <= m[0] and m[1] <= hi  # the reference interval lies inside the band
    assert a.judge(inside)["verdict"] == "reproduced"
    assert a.judge([10.0, 11.0, 12.0])["verdict"] == "not reproduced"
    out = a.judge(inside)
    assert out["ratio"] == pytest.approx(np.mean(inside) / 0.51)
    assert out["band"] == pytest.approx([lo, hi])


def test_anchor_one_seed_is_never_reproduced_and_wide_is_inconclusive():
    a = Anchor("x", 50.0, "paper, Table 2", tolerance=5.0, kind="additive", reason="paper's spread")
    assert a.judge([50.0])["verdict"] == "inconclusive"  # the old rule said "reproduced" from one seed
    assert a.judge([0.45])["verdict"] == "inconclusive"
    # a wide interval around the published value: it straddles the band, never "reproduced"
    wide = [20.0, 80.0, 50.0]
    assert a.judge(wide)["verdict"] == "inconclusive"
    # NaN seeds are not dropped silently
    out = a.judge([50.0, 50.5, math.nan])
    assert out["verdict"] == "inconclusive" and "no finite value" in out["reason"]


def test_anchor_other_setting_has_no_verdict_and_bad_tolerances_are_refused():
    a = Anchor("ratio at ImageNet scale", 4.28, "seed 003, slide table", setting="other")
    assert a.judge([2.0, 2.1, 2.2])["verdict"] == "direction and size only"
    with pytest.raises(ValueError, match="tolerance"):
        Anchor("q", 1.0, "src")
    with pytest.raises(ValueError, match="tolerance"):
        Anchor("q", 1.0, "src", tolerance=0.9, reason="r")  # a factor must be > 1
    with pytest.raises(ValueError, match="reason"):
        Anchor("q", 1.0, "src", tolerance=2.0)
    with pytest.raises(ValueError, match="positive"):
        Anchor("q", -1.0, "src", tolerance=2.0, reason="r")
    with pytest.raises(ValueError, match="setting"):
        Anchor("q", 1.0, "src", setting="elsewhere")


def test_tune_picks_the_minimum_and_extends_an_edge():
    calls = []

    def score(lr, seed):
        calls.append((lr, seed))
        return (math.log10(lr) + 3) ** 2  # optimum at 1e-3, below the initial grid

    t = tune(score, [1e-2, 1e-1, 1.0], [1000], metric="quadratic")
    assert t.value == pytest.approx(1e-3)
    assert t.extended >= 1
    assert all(seed == 1000 for _, seed in calls)
    assert t.bracketed  # 1e-4 was tried below the optimum


def test_tune_reports_an_unbracketed_grid():
    t = tune(lambda lr, s: -lr, [1.0, 2.0], [1000, 1001], metric="m", extend=1)
    assert not t.bracketed and t.value == 4.0
    assert "does not bracket" in t.note()


def test_tune_treats_divergence_as_worst():
    t = tune(lambda lr, s: math.nan if lr > 0.5 else 1.0 - lr, [0.1, 0.3, 1.0], [1000], metric="loss")
    assert t.value == pytest.approx(0.3)


def test_tuning_seeds_are_disjoint_from_evaluation_seeds():
    cfg = {"seeds": 5, "tuning_seeds": 3}
    assert not set(tuning_seeds(cfg)) & set(studies.eval_seeds(cfg))


def _toy_study(name, measured, predictions=(P,)):
    def run(ctx, cfg):
        ctx.check("identity", "1 == 1", True, "trivially")
        ctx.anchor(Anchor("q", 2.0, "paper", tolerance=1.5, reason="stated"), [2.0, 2.1, 1.9])
        return {"x": 1}, measured

    return studies.Study(
        name=name,
        description="toy",
        slide="none",
        quick={"seeds": 3, "window_steps": 5, "tail_fraction": 0.5, "lr": 0.1},
        full={"seeds": 5, "window_steps": 5, "tail_fraction": 0.5, "lr": 0.1},
        run=run,
        predictions=tuple(predictions),
    )


def test_run_writes_predictions_first_and_judges(tmp_path, monkeypatch):
    monkeypatch.setitem(
        studies._REGISTRY._entries,
        "toy-claims",
        (_toy_study("toy-claims", {"gap": [-1.0, -1.1, -0.9]}), "toy"),
    )
    res = studies.run("toy-claims", quick=True, out=tmp_path, store=False, progress=False)
    pred = json.loads((tmp_path / "predictions.json").read_text())
    assert pred["predictions"][0]["predicted"] == "> 0"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["claims"][0]["verdict"] == "fails"
    assert res.verdicts == {"holds": 0, "fails": 1, "inconclusive": 0}
    assert summary["checks"] == [
        {"name": "identity", "check": "1 == 1", "passed": True, "evidence": "trivially"}
    ]
    assert summary["anchors"][0]["verdict"] == "reproduced"
    assert summary["seeds"] == {"evaluation": [0, 1, 2], "tuning": [1000, 1001, 1002]}


def test_run_refuses_unmeasured_or_undeclared(tmp_path, monkeypatch):
    monkeypatch.setitem(studies._REGISTRY._entries, "toy-missing", (_toy_study("toy-missing", {}), "toy"))
    with pytest.raises(ValueError, match="did not measure"):
        studies.run("toy-missing", quick=True, out=tmp_path, store=False, progress=False)
    monkeypatch.setitem(
        studies._REGISTRY._entries,
        "toy-extra",
        (_toy_study("toy-extra", {"gap": [1, 2], "other": [1, 2]}), "toy"),
    )
    with pytest.raises(ValueError, match="undeclared"):
        studies.run("toy-extra", quick=True, out=tmp_path, store=False, progress=False)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"window_steps": 0}, "count"),
        ({"tail_fraction": math.nan}, "finite"),
        ({"lr": math.inf}, "finite"),
        ({"lr": 0.0}, "positive"),
        ({"window_steps": 2.5}, "integer"),
    ],
)
def test_nonsense_settings_are_refused(tmp_path, monkeypatch, override, match):
    monkeypatch.setitem(
        studies._REGISTRY._entries, "toy-bad", (_toy_study("toy-bad", {"gap": [1, 2, 3]}), "toy")
    )
    with pytest.raises(ValueError, match=match):
        studies.run("toy-bad", quick=True, out=tmp_path, store=False, progress=False, **override)
    assert not (tmp_path / "summary.json").exists()


def test_every_registered_study_declares_sourced_predictions():
    for name in studies.available():
        study = studies.get(name)
        for p in study.predictions:
            assert p.source and p.statement and p.quantity, (name, p.name)


def _seeded_study(name, quick, versions=((1, "", "first"),), predictions=None):
    """A toy study whose per-seed values depend on the evaluation seeds it is handed (as real studies do)."""
    null = Prediction("null", "no effect", "paper, Fig. 2", "x", ">", 0.0)

    def run(ctx, cfg):
        seeds = studies.eval_seeds(cfg)
        ctx.check("seeds", "seeds handed in", True, str(seeds))
        measured = {
            "gap": [1.0 + 0.001 * s for s in seeds],
            "null": [(-1.0) ** s * (0.5 + 0.01 * s) for s in seeds],
        }
        return {"seeds": seeds, "undecided": ctx.undecided}, measured

    return studies.Study(
        name=name,
        description="toy",
        slide="none",
        quick=quick,
        full=quick,
        run=run,
        predictions=tuple(predictions or (P, null)),
        versions=versions,
    )


def test_sequential_run_adds_seeds_only_while_undecided(tmp_path, monkeypatch):
    st = _seeded_study("toy-seq", {"seeds": 3, "seed_blocks": [5, 10, 20]})
    monkeypatch.setitem(studies._REGISTRY._entries, "toy-seq", (st, "toy"))
    res = studies.run("toy-seq", quick=True, out=tmp_path, store=False, progress=False)
    s = json.loads((tmp_path / "summary.json").read_text())
    claims = {c["name"]: c for c in s["claims"]}
    assert (
        claims["gap"]["verdict"] == "holds" and claims["gap"]["seeds_used"] == 5
    )  # decided at the first look
    assert (
        claims["null"]["verdict"] == "inconclusive" and claims["null"]["seeds_used"] == 20
    )  # ran to the maximum
    assert [b["seeds"] for b in s["numbers"]["sequential_blocks"]] == [[0, 4], [5, 9], [10, 19]]
    assert s["numbers"]["undecided"] == ["null"]  # the last block was run for the undecided prediction only
    assert s["design"]["blocks"] == [5, 10, 20] and "O'Brien-Fleming" in s["design"]["description"]
    assert s["seeds"]["evaluation"] == list(range(20))
    assert set(s["multiplicity"]["counts"]) == {"raw", "holm", "fdr_bh"}
    assert res.claims[0]["adjusted"]["holm"] in ("holds", "inconclusive")
    pred = json.loads((tmp_path / "predictions.json").read_text())
    assert pred["preregistration"]["hash"] == s["preregistration"]["hash"]


def test_split_half_runs_disjoint_seed_sets(tmp_path, monkeypatch):
    st = _seeded_study("toy-split", {"seeds": 4})
    monkeypatch.setitem(studies._REGISTRY._entries, "toy-split", (st, "toy"))
    studies.run("toy-split", quick=True, out=tmp_path, store=False, progress=False, split_half=True)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["numbers"]["seeds"] == list(range(8))
    assert s["claims"][0]["seeds_used"] == 4  # the verdict is the first half's, as a plain 4-seed run
    sh = s["split_half"]
    assert sh["seeds_per_half"] == 4 and len(sh["predictions"]) == 2
    assert sh["agreement"] == pytest.approx(sh["agree"] / 2)
    with pytest.raises(ValueError, match="seed_blocks"):
        studies.run("toy-split", quick=True, out=tmp_path, store=False, progress=False, sequential=True)


def test_preregistration_versions_and_predictions_document(monkeypatch):
    with pytest.raises(ValueError, match="versions"):
        _seeded_study("toy-v", {"seeds": 3}, versions=((1, "", "first"),),
                      predictions=(Prediction("gap", "s", "src", "q", ">", 0.0, version=2),))  # fmt: skip
    st = _seeded_study("toy-doc", {"seeds": 3, "seed_blocks": [5, 10]})
    monkeypatch.setitem(studies._REGISTRY._entries, "toy-doc", (st, "toy"))
    doc = studies.predictions_document("toy-doc")
    assert doc["preregistration"]["version"] == 1 and len(doc["preregistration"]["hash"]) == 64
    assert "looks after 5, 10 seeds" in doc["quick_design"]
    assert [p["name"] for p in doc["predictions"]] == ["gap", "null"]


def test_every_study_declares_versions_and_anchor_tolerances():
    for name in studies.available():
        study = studies.get(name)
        pre = study.preregistration()
        assert pre["version"] in [v["version"] for v in pre["versions"]], name


def test_cli_prints_predictions_without_running(tmp_path, monkeypatch, capsys):
    from descentlab.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["study", "init-depth", "--predictions"]) == 0
    out = capsys.readouterr().out
    doc = studies.predictions_document("init-depth")
    version = next(p["version"] for p in doc["predictions"] if p["name"] == "kaiming_beats_xavier_30")
    assert doc["preregistration"]["hash"] in out and f"kaiming_beats_xavier_30 (v{version})" in out
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing written
    assert main(["study", "no-such-study", "--predictions"]) == 2


def test_seed_blocks_can_be_declared_on_the_command_line(tmp_path, monkeypatch):
    st = _seeded_study("toy-blocks", {"seeds": 3})
    monkeypatch.setitem(studies._REGISTRY._entries, "toy-blocks", (st, "toy"))
    studies.run("toy-blocks", quick=True, out=tmp_path, store=False, progress=False, seed_blocks=[4, 8])
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["design"]["blocks"] == [4, 8] and s["config"]["seed_blocks"] == [4, 8]
    assert {c["name"]: c["seeds_used"] for c in s["claims"]} == {"gap": 4, "null": 8}
    with pytest.raises(ValueError, match="increase"):
        studies.run("toy-blocks", quick=True, out=tmp_path, store=False, progress=False, seed_blocks=[8, 4])


def test_split_half_of_a_sequential_study_runs_the_plan_twice_on_disjoint_seeds(tmp_path, monkeypatch):
    st = _seeded_study("toy-seq-split", {"seeds": 3, "seed_blocks": [4, 8]})
    monkeypatch.setitem(studies._REGISTRY._entries, "toy-seq-split", (st, "toy"))
    studies.run("toy-seq-split", quick=True, out=tmp_path, store=False, progress=False, split_half=True)
    s = json.loads((tmp_path / "summary.json").read_text())
    blocks = [b["seeds"] for b in s["numbers"]["sequential_blocks"]]
    assert blocks == [[0, 3], [4, 7]]  # the verdicts: the first half, the plan as declared
    sh = {h["name"]: h for h in s["split_half"]["predictions"]}
    assert sh["gap"]["seeds_used"] == [4, 4] and sh["gap"]["first"] == sh["gap"]["second"] == "holds"
    assert sh["null"]["seeds_used"] == [8, 8]  # the null runs each half's plan to its maximum
    assert s["seeds"]["evaluation"] == list(range(8)) and s["seeds"]["second_half"] == list(range(8, 16))
    assert s["split_half"]["agreement"] == pytest.approx(s["split_half"]["agree"] / 2)
    assert {c["name"]: c["seeds_used"] for c in s["claims"]} == {"gap": 4, "null": 8}


def test_equivalence_prediction_by_two_one_sided_tests():
    from scipy import stats

    eq = Prediction(
        "same", "no effect", "slide 3", "a - b per seed", "=", 0.0, margin=0.02, margin_source="band"
    )
    assert eq.predicted == "= 0 ± 0.02" and eq.to_dict()["band"] == [-0.02, 0.02]
    inside = [0.001, -0.002, 0.003, 0.0, 0.002, -0.001]
    r = judge(eq, inside)
    assert r["verdict"] == "holds" and -0.02 < r["interval"][0] < r["interval"][1] < 0.02
    # TOST by hand: each one-sided Student-t test against its edge; p is the larger of the two
    n, m, se = len(inside), sum(inside) / len(inside), stats.sem(inside)
    p_lo, p_hi = stats.t.sf((m + 0.02) / se, n - 1), stats.t.cdf((m - 0.02) / se, n - 1)
    assert r["p_holds"] == pytest.approx(max(p_lo, p_hi))
    assert judge(eq, [0.05, 0.06, 0.055, 0.052])["verdict"] == "fails"  # wholly above the band
    assert judge(eq, [-0.05, -0.06, -0.055, -0.052])["verdict"] == "fails"  # wholly below
    assert judge(eq, [0.0, 0.04, -0.03])["verdict"] == "inconclusive"  # too wide to say
    assert judge(eq, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])["test_used"] == "sign"  # no spread: exact test, decided
    assert judge(eq, [0.0] * 6)["verdict"] == "holds" and judge(eq, [0.0] * 3)["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="band"):
        Prediction("same", "no effect", "slide 3", "q", "=", 0.0)


def test_equivalence_error_rate_at_the_band_edge_is_at_most_alpha():
    import numpy as np

    eq = Prediction("same", "s", "src", "q", "=", 0.0, margin=0.5, margin_source="band")
    rng = np.random.default_rng(0)
    holds = sum(
        judge(eq, rng.normal(0.5, 1.0, 12).tolist(), p_values=False)["verdict"] == "holds"
        for _ in range(2000)
    )
    fails = sum(
        judge(eq, rng.normal(0.0, 0.3, 12).tolist(), p_values=False)["verdict"] == "fails"
        for _ in range(2000)
    )
    assert (
        holds / 2000 <= 0.025 + 3 * (0.025 * 0.975 / 2000) ** 0.5
    )  # true effect on the edge: "holds" rarely
    assert fails == 0  # truly inside the band: never "fails"
