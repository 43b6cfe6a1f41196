"""The judging machinery on hand-made numbers: the group-sequential rule, exact tests, censoring, scales, margins,
multiplicity, split halves and pre-registration hashes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from descentlab.studies.claims import (
    Measurement,
    Prediction,
    SeedPlan,
    Sequential,
    adjust,
    judge,
    predictions_hash,
    split_half,
    tune,
    verdict_counts,
)

P = Prediction("gap", "A beats B.", "seed 003, slide X", "loss(B) - loss(A)", ">", 0.0)
PLAN = SeedPlan((5, 10, 20))


# ---------------------------------------------------------------- the boundary


@pytest.mark.parametrize(
    "blocks, constant",
    # O'Brien-Fleming C_B(K, alpha = 0.05 two-sided) for K equally spaced looks: Jennison & Turnbull (2000),
    # "Group Sequential Methods with Applications to Clinical Trials", Table 2.3.
    [((10, 20), 1.977), ((10, 20, 30), 2.004), ((10, 20, 30, 40), 2.024), ((10, 20, 30, 40, 50), 2.040)],
)
def test_obrien_fleming_constant_matches_the_published_table(blocks, constant):
    assert SeedPlan(blocks).constant == pytest.approx(constant, abs=6e-4)


def test_one_look_is_the_ordinary_95_percent_interval():
    plan = SeedPlan.fixed(5)
    assert plan.constant == pytest.approx(stats.norm.isf(0.025), abs=1e-8)
    assert plan.levels == pytest.approx([0.025])
    xs = [0.3, 0.1, 0.5, 0.2, 0.45]
    out = judge(P, xs, plan=plan)
    ref = stats.t.interval(0.95, 4, loc=np.mean(xs), scale=stats.sem(xs))
    assert out["interval"] == pytest.approx(list(ref))
    assert out["p_holds"] == pytest.approx(stats.ttest_1samp(xs, 0.0, alternative="greater").pvalue)


def test_boundary_crossing_rate_against_brownian_simulation():
    """The z boundary of unequal looks (5, 10, 20) is crossed with probability alpha under the null."""
    rng = np.random.default_rng(0)
    n = 200_000
    t = np.array(PLAN.fractions)
    w = np.cumsum(rng.normal(size=(n, 3)) * np.sqrt(np.diff(np.concatenate([[0.0], t]))), axis=1)
    rate = np.mean((w / np.sqrt(t) >= np.array(PLAN.z_bounds)).any(axis=1))
    se = math.sqrt(PLAN.alpha * (1 - PLAN.alpha) / n)
    assert abs(rate - PLAN.alpha) < 4 * se
    assert PLAN.levels[0] < PLAN.levels[1] < PLAN.levels[2] < PLAN.alpha  # strict early, spent late


def test_repeated_p_value_equals_alpha_on_the_boundary():
    for k, a in enumerate(PLAN.levels):
        assert PLAN.repeated_p(a, k) == pytest.approx(PLAN.alpha, abs=1e-6)
    assert PLAN.repeated_p(PLAN.levels[1] / 10, 1) < PLAN.alpha < PLAN.repeated_p(PLAN.levels[1] * 2, 1)


def test_no_evidence_gives_a_repeated_p_value_of_one_not_zero():
    """A nominal p of 1 (no finite value, or every seed on the other side of a sign test) is no evidence at any
    look: its repeated p-value is 1 (it was 0.0 under a multi-look plan, z = -inf, which Holm and BH then counted
    as a rejection); p-values near 1 stay near 1."""
    for k in range(3):
        assert PLAN.repeated_p(1.0, k) == 1.0
        assert PLAN.repeated_p(math.nan, k) == 1.0
        assert PLAN.repeated_p(0.999, k) > 0.9
    p = Prediction("x", "c", "s", "q", ">", 1.0, "t")
    res = judge(p, [math.nan] * 10, plan=PLAN)
    assert res["verdict"] == "inconclusive" and res["p_value"] == 1.0


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"blocks": ()}, "positive integers"),
        ({"blocks": (10, 5)}, "increase"),
        ({"blocks": (0, 5)}, "positive integers"),
        ({"blocks": (5,), "alpha": 0.6}, "alpha"),
        ({"blocks": (5,), "rule": "Pocock"}, "rule"),
    ],
)
def test_bad_plans_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        SeedPlan(**kw)


# ---------------------------------------------------------------- sequential seeds


def _run(seq: Sequential, values: dict[str, list[float]]) -> None:
    while not seq.done:
        n = seq.next_seeds
        seq.look({k: v[:n] for k, v in values.items() if k in seq.undecided()})


def test_a_known_effect_decides_early():
    big = [1.0, 1.02, 0.98, 1.01, 0.99] + [1.0] * 15  # the first five seeds already decide
    seq = Sequential([P], PLAN)
    assert seq.next_seeds == 5 and seq.undecided() == ["gap"]
    assert seq.look({"gap": big[:5]}) == []
    assert seq.done and seq.next_seeds is None
    (r,) = seq.results()
    assert r["verdict"] == "holds" and r["seeds_used"] == 5 and r["decided_at"] == 5 and r["look"] == 1
    assert r["p_value"] <= PLAN.alpha and "O'Brien-Fleming" in r["design"]


def test_a_null_effect_runs_to_the_maximum():
    null = [0.8, -0.9, 0.3, -0.2, 1.1, -1.0, 0.5, -0.6, 0.1, -0.1] * 2
    seq = Sequential([P], PLAN)
    _run(seq, {"gap": null})
    (r,) = seq.results()
    assert r["verdict"] == "inconclusive" and r["seeds_used"] == 20 and r["stopped"] == "maximum"
    assert seq.looks_done == 3


def test_only_undecided_predictions_get_more_seeds():
    q = Prediction("null", "no effect", "paper, Fig. 2", "x", ">", 0.0)
    seq = Sequential([P, q], PLAN)
    seq.look({"gap": [1.0, 1.02, 0.98, 1.01, 0.99], "null": [0.5, -0.5, 0.2, -0.3, 0.1]})
    assert seq.undecided() == ["null"] and seq.next_seeds == 10
    seq.look(
        {"null": [0.5, -0.5, 0.2, -0.3, 0.1, 0.4, -0.4, 0.0, 0.3, -0.2]}
    )  # no values for the decided one
    with pytest.raises(ValueError, match="undecided prediction 'null'"):
        seq.look({"gap": [1.0] * 20})
    res = {r["name"]: r for r in seq.results()}
    assert res["gap"]["seeds_used"] == 5 and res["null"]["seeds_used"] == 10


def test_sequential_error_rate_simulated_is_at_most_alpha():
    """Under the null (mean exactly on the threshold) the rule says holds, and says fails, each <= alpha."""
    rng = np.random.default_rng(7)
    n = 1200
    holds = fails = 0
    for _ in range(n):
        x = list(rng.normal(size=20))
        seq = Sequential([P], PLAN)
        _run(seq, {"gap": x})
        v = seq.verdicts()["gap"]
        holds += v == "holds"
        fails += v == "fails"
    bound = PLAN.alpha + 3 * math.sqrt(PLAN.alpha * (1 - PLAN.alpha) / n)
    assert holds / n <= bound and fails / n <= bound


def test_a_margin_lets_a_true_null_fail():
    """With a declared smallest effect of interest, a null effect is decided ('fails') instead of inconclusive."""
    q = Prediction(
        "m", "A beats B by >= 1.", "paper, Table 1", "x", ">", 0.0, margin=1.0, margin_source="paper"
    )
    xs = [0.1, -0.2, 0.05, 0.0, -0.1, 0.15, -0.05, 0.1, -0.1, 0.02]
    out = judge(q, xs)
    assert out["interval"][1] < 1.0 and out["verdict"] == "fails"
    assert judge(P, xs)["verdict"] == "inconclusive"  # without the margin it stays open
    # a real but too small effect: on the predicted side, smaller than the effect of interest -> holds with a note
    small = [0.3, 0.32, 0.29, 0.31, 0.3]
    r = judge(q, small)
    assert r["verdict"] == "holds" and "smaller than the smallest effect" in r["evidence"]


# ---------------------------------------------------------------- statistics that fit the data


def test_exact_sign_test_for_discrete_values():
    s = Prediction("d", "A peaks later.", "paper", "peak distance", ">", 0.0, test="sign")
    xs = [2, 3, -1, 4, 5, 6, 7, 8]
    out = judge(s, xs)
    assert out["p_holds"] == pytest.approx(stats.binomtest(7, 8, 0.5, alternative="greater").pvalue)
    assert out["verdict"] == "inconclusive"  # 7 of 8: p = 0.035 > 0.025
    assert judge(s, [1] * 10)["verdict"] == "holds"  # 10 of 10: p = 2**-10
    assert judge(s, [1, 1, 1])["verdict"] == "inconclusive"  # 3 of 3: p = 0.125
    assert judge(s, [-1] * 10)["verdict"] == "fails"
    assert judge(s, [0] * 10)["verdict"] == "inconclusive"  # values on the threshold count against the claim
    assert out["estimate"] == "median" and out["mean"] == pytest.approx(np.median(xs))
    lo, hi = out["interval"]
    assert lo in xs and hi in xs and lo <= np.median(xs) <= hi


def test_zero_spread_is_never_a_zero_width_holds():
    out = judge(P, [1.0, 1.0, 1.0])  # double-descent's 1, 1, 1: a t-interval would have zero width
    assert out["verdict"] == "inconclusive" and out["test_used"] == "sign"
    assert "no spread" in out["evidence"]
    assert judge(P, [0.0, 0.0, 0.0])["verdict"] == "inconclusive"  # lookahead's 0, 0, 0 control
    assert judge(P, [1.0] * 10)["verdict"] == "holds"  # ten identical seeds: the exact test decides


def test_censoring_can_make_a_claim_fail():
    q = Prediction(
        "faster",
        "A reaches the target in fewer steps than B.",
        "paper, Fig. 3",
        "ln(steps B / steps A); A censored at the step budget",
        ">",
        0.0,
        censor="a seed where A never reaches the target counts at the budget (1000 steps)",
    )
    steps_b = [300.0, 320.0, 280.0, 310.0, 290.0]
    ratios = [math.nan, math.nan, math.log(280 / 200), math.nan, math.nan]  # A reaches the target on one seed
    budget = [math.log(b / 1000.0) for b in steps_b]
    out = judge(q, Measurement(ratios, budget=budget))
    assert out["verdict"] == "fails" and out["n_censored"] == 4
    # undeclared censoring: the NaN seeds are not dropped, the claim is inconclusive
    assert judge(P, ratios)["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="declares no censoring"):
        judge(P, Measurement(ratios, budget=budget))
    # declared but no budget handed in: inconclusive with the reason
    assert "no budget" in judge(q, ratios)["inconclusive_reason"]


def test_ratios_on_the_log_scale():
    q = Prediction("r", "SAM flatter.", "paper", "lambda ratio", ">", 1.0, scale="log")
    xs = [2.0, 2.5, 1.8, 3.0]
    out = judge(q, xs)
    logs = np.log(xs)
    ref = stats.t.interval(0.95, 3, loc=logs.mean(), scale=stats.sem(logs))
    assert out["interval"] == pytest.approx(list(ref)) and out["verdict"] == "holds"
    assert "non-positive" in judge(q, [2.0, -1.0, 3.0])["inconclusive_reason"]
    with pytest.raises(ValueError, match="ratio"):
        Prediction("r", "s", "src", "q", ">", 0.0, scale="log")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"scale": "sqrt"}, "scale"),
        ({"test": "wilcoxon"}, "test"),
        ({"margin": -1.0, "margin_source": "x"}, "margin"),
        ({"margin": 0.5}, "margin_source"),
        ({"version": 0}, "version"),
    ],
)
def test_bad_declarations_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        Prediction("x", "s", "src", "q", ">", 0.0, **kw)


# ---------------------------------------------------------------- multiplicity


def test_holm_and_bh_on_hand_made_p_values():
    claims = [
        {"name": f"c{i}", "verdict": "holds", "p_value": p} for i, p in enumerate([0.001, 0.01, 0.02, 0.04])
    ]
    claims[3]["verdict"] = "inconclusive"
    out = adjust(claims, alpha=0.025)
    # Holm by hand: 0.001 * 4 = 0.004 <= 0.025 rejects; 0.01 * 3 = 0.03 > 0.025 stops
    assert [c["adjusted"]["holm"] for c in out] == ["holds", "inconclusive", "inconclusive", "inconclusive"]
    # BH by hand: largest k with p_(k) <= k * 0.025 / 4 is k = 2
    assert [c["adjusted"]["fdr_bh"] for c in out] == ["holds", "holds", "inconclusive", "inconclusive"]
    for method in ("holm", "fdr_bh"):
        _, ref, _, _ = multipletests([0.001, 0.01, 0.02, 0.04], alpha=0.025, method=method)
        assert [c["p_adjusted"][method] for c in out] == pytest.approx(list(ref))
    assert verdict_counts(out) == {"holds": 3, "fails": 0, "inconclusive": 1}
    assert verdict_counts(out, "holm") == {"holds": 1, "fails": 0, "inconclusive": 3}


def test_adjust_on_judged_claims_matches_statsmodels():
    rng = np.random.default_rng(3)
    preds = [Prediction(f"p{i}", "s", "src", "q", ">" if i % 2 else "<", 0.0) for i in range(8)]
    judged = [judge(p, list(rng.normal(0.8 * (i % 3 - 1), 1.0, size=8))) for i, p in enumerate(preds)]
    out = adjust(judged)
    _, ref, _, _ = multipletests([c["p_value"] for c in judged], alpha=0.025, method="holm")
    assert [c["p_adjusted"]["holm"] for c in out] == pytest.approx(list(ref))
    for raw, adj in zip(judged, out):
        # an adjustment never decides what the raw test left open, nor flips a side
        assert adj["adjusted"]["holm"] in (raw["verdict"], "inconclusive")
        assert adj["adjusted"]["fdr_bh"] in (raw["verdict"], "inconclusive")
    with pytest.raises(ValueError, match="unknown adjustment"):
        adjust(judged, methods=("bonferonni",))


def test_legacy_claims_without_p_values_are_marked():
    out = adjust([{"claim": "old", "holds": True, "verdict": "holds"}])
    assert out[0]["adjusted"]["holm"] == "holds" and out[0]["unadjusted"] == "no p-value"


# ---------------------------------------------------------------- split halves, hashes, tuning


def test_split_half_judges_disjoint_halves():
    xs = [1.0, 1.1, 0.9, 1.05, 0.95, -1.0, -1.1, -0.9, -1.05, -0.95]
    out = split_half(P, xs)
    assert out["seeds_per_half"] == 5 and out["first"] == "holds" and out["second"] == "fails"
    assert not out["agree"]
    assert split_half(P, [1.0, 1.1, 0.9, 1.05, 1.2, 0.95])["agree"]
    with pytest.raises(ValueError, match="at least 2"):
        split_half(P, [1.0])


def test_predictions_hash_changes_with_any_declared_field():
    h = predictions_hash([P])
    assert h == predictions_hash([Prediction(*[getattr(P, f) for f in ("name", "statement", "source", "quantity",
                                                                       "direction", "threshold")])])  # fmt: skip
    assert h != predictions_hash(
        [Prediction("gap", "A beats B.", "seed 003, slide X", "loss(B) - loss(A)", ">", 0.1)]
    )
    bumped = Prediction("gap", "A beats B.", "seed 003, slide X", "loss(B) - loss(A)", ">", 0.0, version=2)
    assert h != predictions_hash([bumped]) and len(h) == 64


def test_tune_on_three_seeds_reports_grid_and_bracketing():
    t = tune(
        lambda lr, s: (math.log10(lr) + 2) ** 2 + 0.01 * s, [1e-3, 1e-2, 1e-1], [1000, 1001, 1002], metric="m"
    )
    d = t.to_dict()
    assert d["value"] == pytest.approx(1e-2) and d["bracketed"] and d["enough_seeds"]
    assert d["grid"] == pytest.approx([1e-3, 1e-2, 1e-1])
    one = tune(lambda lr, s: (math.log10(lr) + 2) ** 2, [1e-3, 1e-2, 1e-1], [1000], metric="m")
    assert not one.enough_seeds and "fewer than 3" in one.note()


def test_censored_log_ratios_count_a_diverged_run_at_the_given_loss():
    from descentlab.studies.claims import censored_log_ratios

    values, budget = censored_log_ratios(
        [2.0, math.nan, math.inf, 1.0], [1.0, 0.5, math.nan, 0.0], at=math.log(10)
    )
    assert values[0] == pytest.approx(math.log(2.0)) and all(math.isnan(v) for v in values[1:])
    assert budget[0] == pytest.approx(math.log(2.0))
    assert budget[1] == pytest.approx(math.log(math.log(10) / 0.5))  # the diverged numerator at chance
    assert budget[2] == pytest.approx(0.0)  # both diverged: no difference
    assert math.isnan(budget[3])  # a zero loss is not a diverged run: stays unjudgeable
    q = Prediction("r", "s", "src", "ln ratio", ">", 0.0, scale="log-given", censor="diverged: chance loss")
    assert judge(q, Measurement([0.1, math.nan, 0.12], budget=[0.1, -1.5, 0.12]))["n_censored"] == 1
    with pytest.raises(ValueError, match="censoring value"):
        censored_log_ratios([1.0], [1.0], at=0.0)
