"""new-methods: declared predictions from the papers, every arm tuned, the pair statistic recomputed from the runs."""

from __future__ import annotations

import json
import math

import pytest

import descentlab.studies as studies
from descentlab.store import Store
from descentlab.studies.claims import VERDICTS, judge
from descentlab.studies.muon_vs_adamw import first_step_below
from descentlab.studies.new_methods import ARMS, GPT_PAIRS, GPT_PREDICTIONS, PAIRS, PREDICTIONS

P = {p.name: p for p in PREDICTIONS}


def test_predictions_cite_openable_sources_and_count_misses():
    assert set(P) == set(PAIRS)
    for name, p in P.items():
        assert "arXiv:" in p.source and p.scale == "log-given" and p.censor and p.direction == ">"
        ch, base = PAIRS[name]
        assert ch in ARMS and base in ARMS and ARMS[ch] in p.statement
    p = P["soap_fewer_steps_than_adamw"]
    assert judge(p, [0.2, 0.25, 0.22])["verdict"] == "holds"
    assert (
        judge(p, [-0.2, -0.25, -0.22])["verdict"] == "fails"
    )  # never reached: log10(T / (T + 1)) < 0 counts


def test_small_run_end_to_end_recomputes_from_the_store(tmp_path):
    with Store(tmp_path / "s.db") as st:
        res = studies.run("new-methods", quick=True, out=tmp_path, store=st, progress=False, seeds=2, steps=15,
                          task_kw={"width": 8}, tuning_seeds=1, **{f"{a}_lrs": [1e-3, 1e-2] for a in ARMS})  # fmt: skip
        s = res.summary
        assert [c["name"] for c in s["claims"]] == list(PAIRS)
        assert all(c["verdict"] in VERDICTS and c["n"] == 2 for c in s["claims"])
        assert set(s["numbers"]["tuned"]) == set(ARMS)
        by_opt: dict[str, list] = {}
        for rid in s["runs"]:
            r = st.load_run(rid)
            if (
                r.config["seed"] in (0, 1)
                and r.config["lr"] == s["numbers"]["tuned"][r.config["optimizer"]]["value"]
            ):
                by_opt.setdefault(r.config["optimizer"], {})[r.config["seed"]] = r
        for c in s["claims"]:
            ch, base = PAIRS[c["name"]]
            for seed, v in zip((0, 1), c["values"]):
                ref = by_opt[base][seed].final["train_loss"]
                at = first_step_below(by_opt[ch][seed].metrics("train_loss"), ref)
                want = math.log10(15 / (at if math.isfinite(at) else 16))
                assert v == pytest.approx(want)
        assert {a["verdict"] for a in s["anchors"]} == {"direction and size only"}
    assert (tmp_path / "new_methods.png").exists()
    assert json.loads((tmp_path / "predictions.json").read_text())["preregistration"]["version"] == 1


def test_gpt_ladder_variant_averages_each_seed_over_the_widths(tmp_path):
    """new-methods-gpt: SOAP against AdamW and Shampoo on the speedrun's GPT; a seed's value is the mean of its
    per-width log-ratios, each recomputed here from the stored runs."""
    assert [p.name for p in GPT_PREDICTIONS] == list(GPT_PAIRS)
    for p in GPT_PREDICTIONS:
        assert "arXiv:2409.11321" in p.source and "character GPT" in p.statement and p.censor
    gp = GPT_PREDICTIONS[0]
    assert judge(gp, [0.12, 0.15, 0.13])["verdict"] == "holds"
    assert judge(gp, [-0.004, -0.004, -0.004, -0.004, -0.004, -0.004])["verdict"] == "fails"  # never: T + 1
    assert judge(gp, [0.05, -0.04, 0.01])["verdict"] == "inconclusive"
    with Store(tmp_path / "s.db") as st:
        res = studies.run("new-methods-gpt", quick=True, out=tmp_path, store=st, progress=False, seeds=2, steps=12,
                          widths=[16, 32], context=8, batch_size=4, task_kw={"eval_windows": 4}, tuning_seeds=1,
                          **{f"{a}_lrs": [1e-3, 1e-2] for a in ("adamw", "soap", "shampoo")})  # fmt: skip
        s = res.summary
        assert [c["name"] for c in s["claims"]] == list(GPT_PAIRS)
        assert set(s["numbers"]["tuned"]) == {
            f"{a} (width {w})" for a in ("adamw", "soap", "shampoo") for w in (16, 32)
        }
        runs: dict[tuple, object] = {}
        for rid in s["runs"]:
            r = st.load_run(rid)
            w = r.config["task_kw"]["width"]
            if (
                r.config["seed"] in (0, 1)
                and r.config["lr"] == s["numbers"]["tuned"][f"{r.config['optimizer']} (width {w})"]["value"]
            ):
                runs[(r.config["optimizer"], w, r.config["seed"])] = r
        for c in s["claims"]:
            ch, base = GPT_PAIRS[c["name"]]
            for seed, v in zip((0, 1), c["values"]):
                per = []
                for w in (16, 32):
                    ref = runs[(base, w, seed)].final["train_loss"]
                    at = first_step_below(runs[(ch, w, seed)].metrics("train_loss"), ref)
                    per.append(math.log10(12 / (at if math.isfinite(at) else 13)))
                assert v == pytest.approx(sum(per) / 2)
