"""The `grokking` study: the Grokfast-EMA filter against its formula, helpers, and the quick run's claims."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import descentlab.studies as studies
from descentlab.studies.grokking import GrokfastEMA, adamw_factory, first_step_at, weight_norm


def _quadratic_setup(seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(4, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model, torch.randn(16, 4, generator=g), torch.randn(16, 3, generator=g)


def test_grokfast_ema_matches_the_formula() -> None:
    alpha, lamb, lr = 0.9, 2.0, 0.05
    model, x, y = _quadratic_setup()
    opt = GrokfastEMA(torch.optim.SGD(model.parameters(), lr=lr), alpha=alpha, lamb=lamb)
    # Plain reference: e_1 = g_1; e_t = alpha e_{t-1} + (1 - alpha) g_t; theta -= lr (g_t + lamb e_t).
    ref = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    ema: list[torch.Tensor | None] = [None, None]
    for _ in range(6):

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss

        loss = opt.step(closure)
        ref_loss = ((x @ ref[0].T + ref[1] - y) ** 2).mean()
        grads = torch.autograd.grad(ref_loss, ref)
        with torch.no_grad():
            for i, gi in enumerate(grads):
                ema[i] = gi.clone() if ema[i] is None else alpha * ema[i] + (1 - alpha) * gi
                ref[i] -= lr * (gi + lamb * ema[i])
        assert torch.allclose(loss, ref_loss)
    for p, r in zip(model.parameters(), ref):
        assert torch.allclose(p, r, atol=1e-6)


def test_grokfast_lambda_zero_is_the_base_optimizer() -> None:
    m1, x, y = _quadratic_setup(1)
    m2, _, _ = _quadratic_setup(1)
    o1 = GrokfastEMA(torch.optim.AdamW(m1.parameters(), lr=1e-2, weight_decay=0.5), lamb=0.0)
    o2 = torch.optim.AdamW(m2.parameters(), lr=1e-2, weight_decay=0.5)
    for _ in range(5):
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            o.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(a, b)


def test_grokfast_state_dict_round_trip_into_a_new_model() -> None:
    model, x, y = _quadratic_setup(2)
    opt = adamw_factory(1.0, grokfast=True)(model)
    for _ in range(3):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    model2, _, _ = _quadratic_setup(2)
    model2.load_state_dict(model.state_dict())
    opt2 = adamw_factory(1.0, grokfast=True)(model2)
    opt2.load_state_dict(opt.state_dict())
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        ((m(x) - y) ** 2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.allclose(a, b)
    with pytest.raises(ValueError):
        opt2.load_state_dict(torch.optim.SGD(model2.parameters(), lr=0.1).state_dict())


@pytest.mark.parametrize("kw", [{"alpha": 1.0}, {"alpha": -0.1}, {"lamb": -1.0}, {"lamb": float("nan")}])
def test_grokfast_bad_hyperparameters(kw: dict) -> None:
    with pytest.raises(ValueError):
        GrokfastEMA(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), **kw)
    with pytest.raises(TypeError):
        GrokfastEMA(nn.Linear(2, 2))  # type: ignore[arg-type]


def test_helpers() -> None:
    model = nn.Linear(3, 2)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert weight_norm(model) == pytest.approx(float(flat.norm()), rel=1e-6)
    hist = [(0, 0.1), (50, 0.5), (100, 0.995), (150, 0.98)]
    assert first_step_at(hist, 0.99) == 100 and first_step_at(hist, 0.999) is None


def _check(tmp_path, res) -> dict:
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "grokking"
    assert {"config", "numbers", "claims", "seconds"} <= set(summary)
    assert (tmp_path / "grokking.png").exists() and (tmp_path / "grokking.svg").exists()
    assert summary["claims"]
    failed = [c for c in res.claims if not c["holds"]]
    assert not failed, failed
    return summary


def test_grokking_small_setting_runs(tmp_path) -> None:
    """A few hundred steps of a tiny setting: the study trains, logs the weight norm, draws, and finds the train-99
    step; (grokking itself needs the slow quick run below)."""
    res = studies.run(
        "grokking",
        quick=True,
        out=tmp_path,
        store=tmp_path / "s.db",
        progress=False,
        p=31,
        width=32,
        steps=300,
        eval_every=25,
        threads=1,
        weight_decays=[1.0, 0.0],
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "grokking.png").exists() and (tmp_path / "grokking.svg").exists()
    rows = summary["numbers"]["variants"]["wd = 1"]["seeds"]
    assert rows[0]["train99_step"] is not None and rows[0]["train99_step"] <= 300  # memorised early
    assert (
        rows[0]["final_train_accuracy"] >= 0.99 > rows[0]["final_val_accuracy"]
    )  # ... and not yet generalized
    assert len(res.claims) >= 2 and all(c["evidence"] for c in res.claims)


@pytest.mark.slow
def test_grokking_quick(tmp_path) -> None:
    res = studies.run(
        "grokking", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False, threads=1
    )
    summary = _check(tmp_path, res)
    row = summary["numbers"]["variants"]["wd = 1"]["seeds"][0]
    assert row["delay_ratio"] >= 3


def test_grokfast_recipe_is_adam_with_coupled_l2_inside_the_filter() -> None:
    """Lee et al.'s recipe: one step equals Adam (L2 folded into the gradient) on g + lambda * e, written plainly."""
    from descentlab.studies.grokking import grokfast_factory

    model, x, y = _quadratic_setup(2)
    ref = [p.detach().clone() for p in model.parameters()]
    opt = grokfast_factory(lr=1e-2, l2=5e-3)(model)
    assert isinstance(opt, GrokfastEMA) and isinstance(opt.base_optimizer, torch.optim.Adam)
    assert opt.base_optimizer.defaults["weight_decay"] == 5e-3 and opt.base_optimizer.defaults["betas"] == (0.9, 0.98)
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    opt.step()
    for p, p0, g in zip(model.parameters(), ref, grads):
        e = g  # the EMA starts at the first gradient
        d = g + 2.0 * e + 5e-3 * p0  # filtered gradient, then Adam's coupled L2
        m, v = 0.1 * d, 0.02 * d * d
        expected = p0 - 1e-2 * (m / 0.1) / ((v / 0.02).sqrt() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)


def test_study_without_a_store(tmp_path, monkeypatch) -> None:
    """store=False trains and summarises without writing any store (as train(store=False) does); a wrong type is a
    TypeError naming it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCENTLAB_STORE", str(tmp_path / "default.db"))
    res = studies.run("grokking", quick=True, out=tmp_path / "o", store=False, progress=False, p=11, width=16,
                      steps=20, eval_every=10, threads=1, weight_decays=[1.0])  # fmt: skip
    assert res.summary["numbers"]["variants"]["wd = 1"]["seeds"] and (tmp_path / "o" / "summary.json").is_file()
    assert not list(tmp_path.rglob("*.db"))
    with pytest.raises(TypeError, match="store must be a path, a Store, None or False, got int 3"):
        studies.run("grokking", quick=True, out=tmp_path / "o", store=3, progress=False)
