"""heavy-tail: the statistics and verdicts of its declared predictions on hand-made numbers, one small end-to-end run
(summary.json well-formed, whatever the verdicts), and the tasks it builds."""

from __future__ import annotations

import json
import math

import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.claims import VERDICTS, judge
from descentlab.studies.heavy_tail import (
    PREDICTIONS,
    char_groups_task,
    control_gap,
    group_losses,
    lead,
    log_error_ratio,
    sparse_features_task,
    tail_concentration,
)

P = {p.name: p for p in PREDICTIONS}


def test_group_statistics_by_hand():
    sgd = {0: 1.1, 4: 2.0, 9: 4.8}
    adam = {0: 1.2, 4: 1.9, 9: 3.0}
    assert lead(sgd, adam, 9) == pytest.approx(1.8)
    assert lead(sgd, adam, 0) == pytest.approx(-0.1)
    assert tail_concentration(sgd, adam) == pytest.approx(1.9)  # 1.8 - (-0.1)
    assert control_gap((3.3, 3.1), (4.4, 4.5)) == pytest.approx(0.3)  # 0.2 - (-0.1)
    assert log_error_ratio(5.0, 0.05) == pytest.approx(2.0)
    assert math.isnan(log_error_ratio(math.inf, 1.0)) and math.isnan(log_error_ratio(1.0, 0.0))


def test_group_losses_reads_the_final_metrics_and_blanks_a_diverged_run():
    class R:
        status = "finished"
        final = {"train_loss": 2.0, "train_loss_g0": 1.0, "train_loss_g9": 4.0, "loss": 3.0}

    assert group_losses(R()) == {0: 1.0, 9: 4.0}
    R.status = "diverged"
    assert all(math.isnan(v) for v in group_losses(R()).values())


@pytest.mark.parametrize(
    "name, values, expected",
    [
        # SGD behind Adam on the rarest classes on every seed
        ("rare_classes_slower", [1.7, 1.5, 1.9], "holds"),
        # SGD ahead of Adam on the rarest classes: the slide's statement is wrong here
        ("rare_classes_slower", [-0.4, -0.6, -0.5], "fails"),
        ("rare_classes_slower", [0.8, -0.7, 0.1], "inconclusive"),
        ("lead_in_the_tail", [1.9, 1.6, 2.0], "holds"),
        ("lead_in_the_tail", [-0.3, -0.2, -0.4], "fails"),  # Adam's lead is larger on the head
        ("lead_in_the_tail", [0.3, -0.3, 0.05], "inconclusive"),
        ("balanced_control", [0.2, 0.25, 0.3], "holds"),
        ("balanced_control", [-0.2, -0.25, -0.3], "fails"),  # the gap is larger on balanced classes
        ("balanced_control", [0.2, -0.25, 0.01], "inconclusive"),
        ("rare_characters_slower", [0.9, 1.0, 0.8], "holds"),
        ("rare_characters_slower", [-0.2, -0.1, -0.15], "fails"),
        ("rare_characters_slower", [0.2, -0.1, 0.0], "inconclusive"),
        ("adagrad_rare_features", [1.8, 1.9, 1.7], "holds"),
        ("adagrad_rare_features", [-0.5, -0.4, -0.6], "fails"),
        ("adagrad_rare_features", [0.5, -0.4, 0.2], "inconclusive"),
        ("adagrad_rare_features", [1.8, math.nan, 1.7], "inconclusive"),  # a seed without a value
    ],
)
def test_each_prediction_can_hold_fail_or_be_inconclusive(name, values, expected):
    assert judge(P[name], values)["verdict"] == expected


def test_statistics_feed_the_verdicts():
    """Per-seed values built with the study's own functions: Adam's lead sits on the head, not on the tail."""
    seeds = [
        ({0: 1.5, 9: 2.8}, {0: 1.0, 9: 3.1}),
        ({0: 1.6, 9: 2.9}, {0: 1.1, 9: 3.15}),
        ({0: 1.4, 9: 2.7}, {0: 1.0, 9: 3.05}),
    ]
    assert judge(P["rare_classes_slower"], [lead(s, a, 9) for s, a in seeds])["verdict"] == "fails"
    assert judge(P["lead_in_the_tail"], [tail_concentration(s, a) for s, a in seeds])["verdict"] == "fails"


def test_small_setting_runs_end_to_end(tmp_path):
    """The whole study on a few steps and 2 seeds: every declared prediction judged, checks and figure written."""
    studies.run("heavy-tail", quick=True, out=tmp_path, store=False, progress=False, seeds=2, steps=20,
                      sparse_steps=20, charlm_steps=10, classes=32, samples=1024, eval_every=10,
                      sgd_lrs=[1.0, 3.0], adam_lrs=[1e-2, 3e-2], sparse_n=300, sparse_d=30,
                      sparse_sgd_lrs=[0.5, 1.0], sparse_adagrad_lrs=[0.5, 1.0], charlm_width=16,
                      charlm_sgd_lrs=[0.3, 1.0], charlm_adam_lrs=[1e-2, 3e-2])  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    declared = json.loads((tmp_path / "predictions.json").read_text())["predictions"]
    assert [c["name"] for c in summary["claims"]] == [p["name"] for p in declared] == list(P)
    for c in summary["claims"]:
        assert c["verdict"] in VERDICTS
        assert len(c["values"]) == 2 and c["n"] == 2, c
        assert len(c["interval"]) == 2 and c["evidence"]
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    assert {c["name"] for c in summary["checks"]} == {"sgd_rare_not_stalled", "sgd_learns_frequent_classes"}
    assert all(isinstance(c["passed"], bool) for c in summary["checks"])
    for part in ("zipf", "balanced"):
        assert set(summary["numbers"]["tuned"][part]) == {"sgd", "adam"}
    assert summary["numbers"]["tuned"]["zipf"]["sgd"]["seeds"] == [1000]
    assert (tmp_path / "heavy_tail.png").exists() and (tmp_path / "heavy_tail.svg").exists()


def test_char_groups_split_the_text_and_the_loss():
    task = char_groups_task(depth=1, width=16, heads=2, context=8, group_windows=64)
    tokens = task.train_data[0]
    share = torch.bincount(task.char_group[tokens], minlength=10).double() / len(tokens)
    # frequency_groups: each group ~10 % of the text, unless one character alone is bigger than that (the space)
    assert float(share.sum()) == pytest.approx(1.0)
    assert float(share[1:].max()) < 0.2
    model = task.make_model(0)
    groups = task.loss_by_group(model)
    # the count-weighted mean of the per-group losses is the plain cross-entropy on the same windows
    starts = torch.linspace(0, len(tokens) - 9, 64).long()
    idx = starts[:, None] + torch.arange(9)
    x, y = tokens[idx][:, :-1], tokens[idx][:, 1:]
    with torch.no_grad():
        per = torch.nn.functional.cross_entropy(model(x).reshape(-1, 96), y.reshape(-1), reduction="none")
    g = task.char_group[y.reshape(-1)]
    weighted = sum(groups[j] * int((g == j).sum()) for j in groups) / g.numel()
    assert weighted == pytest.approx(float(per.mean()), rel=1e-5)
    metrics = task.evaluate(model)
    assert {f"train_loss_g{j}" for j in groups} <= set(metrics)


def test_sparse_features_follow_zipf_and_the_linear_model():
    task = sparse_features_task(n=20000, d=20, p_max=0.5, noise=0.0, seed=1)
    freq = torch.tensor(task.config["frequency"])
    expected = 0.5 / torch.arange(1, 21)
    assert torch.allclose(freq, expected, atol=0.015)
    x, y = task.train_data
    assert torch.allclose(x @ torch.tensor(task.config["w_star"]), y, atol=1e-5)
    model = task.make_model(0)
    assert float(model.weight.detach().abs().sum()) == 0.0  # started at zero


def test_sparse_features_bad_input():
    with pytest.raises(ValueError, match="p_max"):
        sparse_features_task(p_max=0.0)


def test_a_diverged_run_counts_at_the_uniform_loss():
    """v2 censoring: a diverged SGD run's group losses count at log C (no progress), so it can decide the claim."""
    from descentlab.studies.claims import Measurement
    from descentlab.studies.heavy_tail import PREDICTIONS, at_chance, lead

    log_c = math.log(10)
    assert at_chance({0: 0.5, 1: math.nan, 2: math.inf}, log_c) == {0: 0.5, 1: log_c, 2: log_c}
    sgd_diverged, adam = {0: math.nan, 4: math.nan}, {0: 0.2, 4: 0.9}
    values = [1.1, 1.2, lead(sgd_diverged, adam, 4)]
    budget = [1.1, 1.2, lead(at_chance(sgd_diverged, log_c), adam, 4)]
    pred = next(p for p in PREDICTIONS if p.name == "rare_classes_slower")
    assert judge(pred, values)["verdict"] == "inconclusive"  # NaN: never dropped silently
    out = judge(pred, Measurement(values, budget=budget))
    assert (
        out["n_censored"] == 1 and out["values"][2] != out["values"][2]
    )  # the raw NaN is kept in the record
