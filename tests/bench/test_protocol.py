"""The protocol end to end on `tiny`: evaluation hooks (LAWA/EMA algorithms), the null test, pairwise comparison,
target derivation and validation, the report files; the null test on the cheap workloads is slow."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from descentlab.bench import get_algorithm, plan, run_benchmark, run_trial
from descentlab.bench.algorithms import TWIN_SEED_OFFSET, Algorithm
from descentlab.bench.checks import null_test, null_test_markdown
from descentlab.bench.cli import bench_app
from descentlab.bench.targets import (
    derive_targets,
    easier_quantile,
    load_targets,
    round_easier,
    step_easier,
    validate_targets,
    validation_markdown,
    write_targets,
)


def test_prepare_for_eval_maps_onto_an_optimizer_wrapper():
    lawa = get_algorithm("nadamw_last5")
    kw = lawa.train_kwargs(lawa.default, step_hint=1000)
    assert kw["optimizer"] == "lawa"
    assert (
        kw["hparams"]["base"] == "algoperf_nadamw"
        and kw["hparams"]["k"] == 5
        and kw["hparams"]["every"] == 20
    )
    assert kw["hparams"]["betas"] == (0.9, 0.99) and kw["lr"] == lawa.default["lr"]
    ema = get_algorithm("nadamw_snapema").train_kwargs({"lr": 1e-3}, step_hint=150)
    assert ema["optimizer"] == "ema" and ema["hparams"]["every"] == 2 and ema["hparams"]["decay"] == 0.9
    assert (
        get_algorithm("nadamw").train_kwargs({"lr": 1e-3})["optimizer"] == "algoperf_nadamw"
    )  # no hook: unchanged
    with pytest.raises(ValueError, match="needs the workload's step_hint"):
        lawa.train_kwargs(lawa.default)
    with pytest.raises(ValueError, match="prepare_for_eval must be a dict with a 'method'"):
        Algorithm("x", "adam", space={"lr": 1e-3}, default={"lr": 1e-3}, prepare_for_eval={"k": 3})
    with pytest.raises(ValueError, match="every_fraction must be in \\[0, 1\\], got 2"):
        Algorithm("x", "adam", space={"lr": 1e-3}, default={"lr": 1e-3},
                  prepare_for_eval={"method": "lawa", "every_fraction": 2})  # fmt: skip


def test_hook_and_seed_offset_enter_the_key_only_when_set():
    spec = get_algorithm("nadamw").spec()
    assert "prepare_for_eval" not in spec and "seed_offset" not in spec  # existing cache keys unchanged
    assert get_algorithm("nadamw_last5").spec()["prepare_for_eval"]["method"] == "lawa"
    twin = get_algorithm("nadamw").twin()
    assert twin.name == "nadamw_twin" and twin.spec()["seed_offset"] == TWIN_SEED_OFFSET
    a = plan(["nadamw", twin], ["tiny"], trials=2, studies=2)
    seeds = {s["algorithm"]["name"]: sorted(x["seed"] for x in a if x["algorithm"]["name"] == s["algorithm"]["name"])
             for s in a}  # fmt: skip
    assert seeds["nadamw"] == [0, 1, 1000, 1001]
    assert seeds["nadamw_twin"] == [TWIN_SEED_OFFSET + s for s in seeds["nadamw"]]
    pts = {(s["algorithm"]["name"], s["trial"], s["study"]): s["hparams"] for s in a}
    assert pts[("nadamw", 0, 0)] != pts[("nadamw_twin", 0, 0)]  # other Halton draws too
    with pytest.raises(ValueError, match="seed_offset must be an integer >= 0, got -1"):
        Algorithm("x", "adam", space={"lr": 1e-3}, default={"lr": 1e-3}, seed_offset=-1)


def test_lawa_and_ema_algorithms_run_as_trials(tmp_path):
    res = run_benchmark(["nadamw_last5", "nadamw_snapema"], ["tiny"], tuning="self", studies=1,
                        store=tmp_path / "s.db", progress=False, scale=1.0)  # fmt: skip
    assert {r["status"] for r in res.results.values()} == {"finished"}
    for (
        r
    ) in res.results.values():  # one shared training (bench.trial.shared_trainings), each its own evaluation
        assert r["config"]["optimizer"] == "side_averages"
        assert r["config"]["hparams"]["base"] == "algoperf_nadamw"
        assert set(r["config"]["hparams"]["sides"]) == {"nadamw_last5", "nadamw_snapema"}
        assert r["config"]["shared_training"]["evaluated"] == r["spec"]["algorithm"]["name"]
    for spec in res.specs:  # a trial run alone wraps the base in its own hook
        alone = run_trial(spec)
        assert alone["config"]["optimizer"] in ("lawa", "ema")
        assert alone["config"]["hparams"]["base"] == "algoperf_nadamw"


def test_null_test_machinery_on_tiny(tmp_path):
    res = null_test("sgd_nesterov", ["tiny"], trials=2, studies=3, store=tmp_path / "s.db", progress=False,
                    scale=1.0, n_boot=1000)  # fmt: skip
    assert res["twin"] == "sgd_nesterov_twin"
    specs = res["result"].specs
    assert {s["seed"] for s in specs if s["algorithm"]["name"] == "sgd_nesterov"}.isdisjoint(
        {s["seed"] for s in specs if s["algorithm"]["name"] == "sgd_nesterov_twin"}
    )
    assert res["tied"], null_test_markdown(res)
    lo, hi = res["difference_interval"]
    assert lo <= res["difference"] <= hi and res["abs_difference"] == abs(res["difference"])
    md = null_test_markdown(res)
    assert (
        "sgd_nesterov_twin" in md
        and "Paired test" in md
        and "Spike-in (the twin's times and censoring point x0.67)" in md
    )
    assert res["spike"]["factor"] == 0.67 and res["passed"] == (res["tied"] and res["spike"]["detected"])
    with pytest.raises(ValueError, match="others must not contain"):
        null_test("sgd_nesterov", ["tiny"], others=["sgd_nesterov"], store=tmp_path / "s.db")


@pytest.mark.slow
def test_null_test_on_the_cheap_workloads(tmp_path):
    """The same algorithm twice (other seeds) must come out tied on real workloads with the full protocol."""
    res = null_test("nadamw", ["digits", "logreg", "mnist1d_mlp"], trials=5, studies=3, executor="processes",
                    store=tmp_path / "s.db", progress=False)  # fmt: skip
    assert res["tied"], null_test_markdown(res)
    assert "spike" in res and "passed" in res, null_test_markdown(res)


def test_compare_and_report_on_tiny(tmp_path):
    runner = CliRunner()
    common = [
        "-w",
        "tiny",
        "--trials",
        "2",
        "--studies",
        "2",
        "--store",
        str(tmp_path / "s.db"),
        "--scale",
        "1",
    ]
    res = runner.invoke(bench_app, ["compare", "sgd_nesterov", "signsgd", *common])
    assert res.exit_code != 0 and "add --run" in str(res.exception)
    res = runner.invoke(bench_app, ["compare", "sgd_nesterov", "signsgd", *common, "--run", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["verdict"] in ("faster", "slower", "no significant difference")
    assert len(data["studies_a"]) == 2 and len(data["trials_a"][0]) == 2 and data["missing"] == 0
    text = runner.invoke(bench_app, ["compare", "sgd_nesterov", "signsgd", *common])
    assert text.exit_code == 0 and "sgd_nesterov is " in text.output
    same = runner.invoke(bench_app, ["compare", "adamw", "adamw", *common])
    assert "two different algorithms" in str(same.exception)

    opts = ["-a", "sgd_nesterov,signsgd", "--trials", "2", "--studies", "2", "--store", str(tmp_path / "s.db"),
            "--scale", "1", "-w", "tiny"]  # fmt: skip
    scored = runner.invoke(bench_app, ["score", *opts, "--json"])
    assert scored.exit_code == 0, scored.output
    sj = json.loads(scored.output)
    assert set(sj["score_intervals"]) == {"sgd_nesterov", "signsgd"} and sj["ci"] == 0.9
    assert sj["ranks"]["sgd_nesterov"]["rank"] >= 1 and len(sj["trial_times"]["signsgd"]["tiny"]) == 2
    plain = runner.invoke(bench_app, ["score", *opts])
    assert plain.exit_code == 0 and "90 % interval" in plain.output
    rep = runner.invoke(bench_app, ["report", *opts, "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    md = (tmp_path / "rep" / "leaderboard.md").read_text()
    assert "Too few studies for a 90 % interval" in md and "rank interval" in md and "tied with" not in md
    for name in ("leaderboard.json", "profiles.png", "times.png", "curves_tiny.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("value", "metric", "higher", "expected"),
    [
        (0.6693, "accuracy", True, 0.665),
        (0.99, "accuracy", True, 0.99),
        (1.4134, "loss", False, 1.42),
        (1.41, "loss", False, 1.41),
        (6.07e-9, "gap", False, 7e-9),
        (0.0123, "gap", False, 0.02),
    ],
)
def test_round_toward_the_easier_side(value, metric, higher, expected):
    assert round_easier(value, metric, higher) == pytest.approx(expected)


def test_recalibration_steps():
    assert step_easier(0.665, "accuracy", True) == pytest.approx(0.66)
    assert step_easier(1.42, "loss", False) == pytest.approx(1.43)
    assert step_easier(2e-8, "gap", False) == pytest.approx(3e-8)
    # the hardest value two thirds of the runs reach: the 4th best of 6 (accuracy), the 2nd best of 3 (loss)
    assert easier_quantile([0.9, 0.95, 0.97, 0.99, 0.8, 0.96], True) == 0.95
    assert easier_quantile([1.3, 1.5, 1.4], False) == 1.4
    assert easier_quantile([1.3, math.inf], False) == 1.3
    with pytest.raises(ValueError, match="no finite values"):
        easier_quantile([math.nan], True)


def test_derive_and_validate_targets_on_tiny(tmp_path):
    out = derive_targets(["tiny"], baselines=("sgd_nesterov",), trials=2, repeats=2, studies=3, store=tmp_path / "s.db",
                         progress=False, scale=1.0, extra_points={})  # fmt: skip
    e = out["tiny"]
    assert e["baseline"] == "sgd_nesterov" and "lr" in e["hparams"]
    assert e["status"] in ("validated", "failed") and e["target"] == e["candidates"][-1]
    assert len(e["repeats"]["within_fraction"]) == 2
    assert len(e["validation"]) == len(e["candidates"]) <= 3
    for a, b in zip(e["candidates"], e["candidates"][1:]):
        assert b > a  # each recalibration is easier (a gap: larger)
    v = e["validation"][-1]
    assert v["studies"] == 3 and len(v["times"]) == 3 and v["passed"] == (e["status"] == "validated")
    assert not set(v["seeds"]) & set(e["repeats"]["seeds"])  # fresh seeds
    md = validation_markdown(out)
    assert md.startswith("| workload | target |") and "| tiny | ≤" in md
    path = write_targets(out, tmp_path / "targets.json")
    assert load_targets(path)["tiny"]["target"] == e["target"]
    again = validate_targets(
        ["tiny"], targets={"tiny": e}, store=tmp_path / "s.db", progress=False, scale=1.0
    )
    assert again["tiny"]["baseline"] == "sgd_nesterov" and again["tiny"]["studies"] == 3
    assert math.isfinite(again["tiny"]["budget"])
    with pytest.raises(ValueError, match="workload 'tiny' has no target-setting configuration"):
        validate_targets(["tiny"], targets={"tiny": {"target": 1.0}})


def test_shipped_targets_file_covers_the_shipped_workloads():
    from descentlab.bench import available_workloads, get_workload

    entries = load_targets()
    for w in available_workloads() + available_workloads(track="steps"):
        assert entries[w]["target"] == get_workload(w).target


def test_a_failing_target_is_recalibrated_and_validated_on_new_seeds(tmp_path):
    """validate-targets --recalibrate: an unreachable target fails, the next candidate comes from every run so far
    (the documented rule, easier by at least one rounding step) and is validated on seeds not used before."""
    hard = {"target": 1e-12, "baseline": "sgd_nesterov", "hparams": {"lr": 0.05, "weight_decay": 1e-4},
            "repeats": {"seeds": [7, 8], "within_fraction": [3e-8, 4e-8]}, "validation": []}  # fmt: skip
    out = validate_targets(["tiny"], targets={"tiny": hard}, store=tmp_path / "s.db", progress=False, scale=1.0,
                           recalibrate=True)  # fmt: skip
    e = out["tiny"]["entry"]
    rounds = e["revalidation"]
    assert rounds[0]["target"] == 1e-12 and not rounds[0]["passed"] and 2 <= len(rounds) <= 3
    assert [r["round"] for r in rounds] == list(range(len(rounds)))
    assert all(b["target"] > a["target"] for a, b in zip(rounds, rounds[1:]))  # each round easier
    seeds = [s for r in rounds for s in r["seeds"]]
    assert len(seeds) == len(set(seeds)) and not set(seeds) & {7, 8}  # fresh seeds every round
    assert e["target"] == rounds[-1]["target"] and e["status"] == out["tiny"]["status"]
    assert out["tiny"]["passed"] == rounds[-1]["passed"]
    path = write_targets({"tiny": e}, tmp_path / "t.json")
    assert load_targets(path)["tiny"]["target"] == e["target"]
    once = validate_targets(
        ["tiny"], targets={"tiny": hard}, store=tmp_path / "s.db", progress=False, scale=1.0
    )
    assert (
        once["tiny"]["status"] == "failed" and once["tiny"]["target"] == 1e-12
    )  # without --recalibrate: reported
