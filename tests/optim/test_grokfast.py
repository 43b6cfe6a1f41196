"""Grokfast-EMA (Lee et al. 2024, Algorithm 2) against its formula on hand numbers and a plain re-statement.

The formula: h_t = alpha h_{t-1} + (1 - alpha) g_t (h_1 = g_1), g~_t = g_t + lamb h_t, then the base optimizer's
step on g~_t.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from descentlab import optim
from descentlab.optim import GrokfastEMA


def test_the_formula_on_hand_numbers() -> None:
    """One weight, loss c_t * w (so g_t = c_t), alpha 0.5, lamb 2, SGD with lr 0.1, w_0 = 0:

    t  g_t   h_t = 0.5 h + 0.5 g     g~_t = g + 2 h    w_t = w - 0.1 g~
    1   1    1 (the first gradient)   3                 -0.3
    2   3    0.5*1 + 0.5*3 = 2        3 + 4 = 7         -1.0
    3  -2    0.5*2 + 0.5*(-2) = 0     -2 + 0 = -2       -0.8
    """
    w = nn.Parameter(torch.zeros((), dtype=torch.float64))
    opt = optim.create("grokfast", [w], base="sgd", lr=0.1, alpha=0.5, lamb=2.0)
    assert isinstance(opt, GrokfastEMA) and isinstance(opt.base_optimizer, torch.optim.SGD)
    for c, h, g_filtered, w_after in ((1.0, 1.0, 3.0, -0.3), (3.0, 2.0, 7.0, -1.0), (-2.0, 0.0, -2.0, -0.8)):
        opt.zero_grad()
        (c * w).backward()
        opt.step()
        assert opt.state[w]["ema"].item() == pytest.approx(h, abs=1e-12)
        assert w.grad.item() == pytest.approx(g_filtered, abs=1e-12)  # the base stepped on g~
        assert w.item() == pytest.approx(w_after, abs=1e-12)


def _quadratic_setup(seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(4, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model, torch.randn(16, 4, generator=g), torch.randn(16, 3, generator=g)


def test_matches_a_plain_restatement_over_several_steps() -> None:
    alpha, lamb, lr = 0.9, 2.0, 0.05
    model, x, y = _quadratic_setup()
    opt = GrokfastEMA(torch.optim.SGD(model.parameters(), lr=lr), alpha=alpha, lamb=lamb)
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
        torch.testing.assert_close(loss, ref_loss)
    for p, r in zip(model.parameters(), ref):
        torch.testing.assert_close(p.detach(), r.detach(), rtol=1e-5, atol=1e-6)


def test_lamb_zero_is_the_base_optimizer() -> None:
    m1, x, y = _quadratic_setup(1)
    m2, _, _ = _quadratic_setup(1)
    o1 = optim.create("grokfast", m1, base="adamw", lr=1e-2, weight_decay=0.5, lamb=0.0)
    o2 = torch.optim.AdamW(m2.parameters(), lr=1e-2, weight_decay=0.5)
    for _ in range(5):
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            o.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b)


def test_paper_recipe_is_adam_with_coupled_l2_inside_the_filter() -> None:
    """Lee et al.'s recipe (Adam, L2 5e-3 coupled, alpha 0.98, lamb 2): one step written plainly."""
    model, x, y = _quadratic_setup(2)
    ref = [p.detach().clone() for p in model.parameters()]
    opt = optim.create("grokfast", model, base="adam", lr=1e-2, betas=(0.9, 0.98), weight_decay=5e-3)
    assert opt.alpha == 0.98 and opt.lamb == 2.0 and isinstance(opt.base_optimizer, torch.optim.Adam)
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    opt.step()
    for p, p0, g in zip(model.parameters(), ref, grads):
        d = g + 2.0 * g + 5e-3 * p0  # h_1 = g_1, then Adam's coupled L2 on the filtered gradient
        m, v = 0.1 * d, 0.02 * d * d
        expected = p0 - 1e-2 * (m / 0.1) / ((v / 0.02).sqrt() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_into_a_new_model_and_schedulers_see_the_groups() -> None:
    model, x, y = _quadratic_setup(2)
    make = lambda m: optim.create("grokfast", m, base="adamw", lr=1e-2, weight_decay=1.0)  # noqa: E731
    opt = make(model)
    for _ in range(3):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    model2, _, _ = _quadratic_setup(2)
    model2.load_state_dict(model.state_dict())
    opt2 = make(model2)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    assert opt2.param_groups is opt2.base_optimizer.param_groups
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        ((m(x) - y) ** 2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="grokfast"):
        opt2.load_state_dict(torch.optim.SGD(model2.parameters(), lr=0.1).state_dict())


@pytest.mark.parametrize("kw", [{"alpha": 1.0}, {"alpha": -0.1}, {"lamb": -1.0}, {"lamb": float("nan")}])
def test_bad_hyperparameters(kw: dict) -> None:
    with pytest.raises(ValueError):
        GrokfastEMA(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), **kw)
    with pytest.raises(ValueError):
        optim.create("grokfast", nn.Linear(2, 2), **kw)


def test_bad_base() -> None:
    with pytest.raises(TypeError):
        GrokfastEMA(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base"):
        optim.create("grokfast", nn.Linear(2, 2), base="grokfast")
    with pytest.raises(ValueError):
        optim.create("grokfast", nn.Linear(2, 2), base="no_such_optimizer")
