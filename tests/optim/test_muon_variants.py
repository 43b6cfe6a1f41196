"""Formula tests of descentlab Muon's options: row / elementwise normalization (NorMuon, AdaMuon), the sign step,
the rescaling, cautious weight decay; each on hand-built matrices with the exact polar factor (ns_method="svd")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab.optim import Muon, create


def polar(m: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(m, full_matrices=False)
    return u @ vh


def one_step(w0: torch.Tensor, g: torch.Tensor, **hp) -> tuple[torch.Tensor, Muon]:
    w = nn.Parameter(w0.clone())
    opt = Muon([w], ns_method="svd", nesterov=False, momentum=0.0, **hp)
    w.grad = g.clone()
    opt.step()
    return w.detach(), opt


W0 = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], dtype=torch.float64)
G = torch.tensor([[1.0, 2.0, -1.0], [0.5, -3.0, 4.0]], dtype=torch.float64)


def test_row_normalization_one_step_by_hand():
    """momentum 0: O = msign(G); v = (1 - b2) mean_cols(O^2) (one per row); O^ = O / (sqrt(v) + eps);
    'orthogonal' rescale: O^ * sqrt(min(m, n)) / ||O^||_F; step lr * 1 (adjust_lr None)."""
    lr, b2, eps = 0.1, 0.9, 1e-8
    w, opt = one_step(
        W0, G, lr=lr, normalize="row", beta2=b2, norm_eps=eps, rescale="orthogonal", adjust_lr=None
    )
    o = polar(G)
    v = (1 - b2) * (o * o).mean(dim=1, keepdim=True)
    oh = o / (v.sqrt() + eps)
    expected = W0 - lr * oh * math.sqrt(2) / (oh.norm() + eps)
    torch.testing.assert_close(w, expected, rtol=1e-12, atol=1e-12)
    assert opt.state[opt.param_groups[0]["params"][0]]["second_moment"].shape == (2, 1)
    # every row of the step has the same norm after normalization of a 2 x 3 orthogonal-rows matrix
    step = (W0 - w) / lr
    torch.testing.assert_close(
        step.norm(dim=1), torch.full((2,), 1.0, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_preserve_rescale_keeps_the_frobenius_norm_of_o():
    w, _ = one_step(W0, G, lr=1.0, normalize="row", rescale="preserve", adjust_lr=None)
    torch.testing.assert_close((W0 - w).norm(), polar(G).norm(), rtol=1e-9, atol=0)


def test_elementwise_normalization_and_sign_step_by_hand():
    """AdaMuon: O = msign(sign(G)), V = (1 - b2) O^2 elementwise, O^ = O / (sqrt(V) + eps), 'orthogonal' rescale,
    adjust_lr 'match_rms_adamw' (0.2 sqrt(max(m, n))): step = lr 0.2 sqrt(mn) O^ / ||O^||_F."""
    lr, b2, eps = 0.05, 0.95, 1e-8
    w, _ = one_step(W0, G, lr=lr, normalize="elementwise", sign_momentum=True, beta2=b2, norm_eps=eps,
                    rescale="orthogonal", adjust_lr="match_rms_adamw")  # fmt: skip
    o = polar(torch.sign(G))
    oh = o / (((1 - b2) * o * o).sqrt() + eps)
    expected = W0 - lr * 0.2 * math.sqrt(2 * 3) * oh / (oh.norm() + eps)
    torch.testing.assert_close(w, expected, rtol=1e-10, atol=1e-12)


def test_second_moment_is_an_ema_over_steps():
    w = nn.Parameter(W0.clone())
    opt = Muon([w], ns_method="svd", normalize="row", beta2=0.5, momentum=0.0, nesterov=False)
    v = torch.zeros(2, 1, dtype=torch.float64)
    for g in (G, -2 * G.flip(1), G.T.reshape(2, 3)):
        w.grad = g.clone()
        opt.step()
        o = polar(g)
        v = 0.5 * v + 0.5 * (o * o).mean(dim=1, keepdim=True)
    torch.testing.assert_close(opt.state[w]["second_moment"], v, rtol=1e-12, atol=1e-14)


def test_cautious_weight_decay_decays_only_where_update_and_weight_agree():
    """Chen et al. 2025: W <- W - lr wd 1[O * W >= 0] W - lr O (adjust_lr None)."""
    lr, wd = 0.1, 0.5
    w, _ = one_step(W0, G, lr=lr, weight_decay=wd, cautious_wd=True, adjust_lr=None)
    o = polar(G)
    mask = (o * W0 >= 0).to(W0.dtype)
    torch.testing.assert_close(w, W0 - lr * wd * mask * W0 - lr * o, rtol=1e-12, atol=1e-12)
    assert 0 < mask.sum() < mask.numel()  # the hand case has both kinds of coordinates
    plain, _ = one_step(W0, G, lr=lr, weight_decay=wd, adjust_lr=None)
    torch.testing.assert_close(plain, W0 * (1 - lr * wd) - lr * o, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(w, plain)


def test_options_off_is_plain_muon():
    w1, _ = one_step(W0, G, lr=0.1, weight_decay=0.1)
    w2, _ = one_step(W0, G, lr=0.1, weight_decay=0.1, normalize=None, sign_momentum=False, cautious_wd=False)
    assert torch.equal(w1, w2)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"normalize": "column"}, "column"),
        ({"beta2": 1.0}, "beta2"),
        ({"norm_eps": -1.0}, "norm_eps"),
        ({"rescale": "rms"}, "rms"),
        ({"cautious_wd": 1}, "cautious_wd"),
        ({"sign_momentum": "yes"}, "yes"),
        ({"nuclear_scale": 0}, "nuclear_scale"),
    ],
)
def test_bad_options_raise_naming_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        Muon([nn.Parameter(W0.clone())], **kw)


def test_registry_variants_fix_their_options():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = create("normuon", model, lr=1e-3)
    muon_group = next(g for g in opt.param_groups if g["use_muon"])
    assert (muon_group["normalize"], muon_group["rescale"], muon_group["adjust_lr"]) == (
        "row", "orthogonal", "match_rms_adamw")  # fmt: skip
    adam_group = next(g for g in opt.param_groups if not g["use_muon"])
    assert adam_group["lr"] == 1e-3  # one lr: the step has AdamW's RMS scale
    ada = next(g for g in create("adamuon", model).param_groups if g["use_muon"])
    assert ada["normalize"] == "elementwise" and ada["sign_momentum"] is True
    with pytest.raises(ValueError, match="normalize"):
        create("normuon", model, normalize="elementwise")
