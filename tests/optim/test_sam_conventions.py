"""SAM / ASAM conventions (docs/optimizers.md): one perturbation norm over all parameters together, every param group
included, each group's rho scaling its part; ASAM's T_w = |w| + eta on every parameter by default, or -- as Kwon et
al.'s reference code does -- only on parameters named ``*weight*`` (``adaptive_params="weights"``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab.optim import SAM, create
from descentlab.optim.sam import weight_groups


def _perturbation(opt: SAM, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """eps applied by first_step (the weights are restored afterwards)."""
    before = [p.detach().clone() for p in params]
    opt.first_step()
    eps = [p.detach() - b for p, b in zip(params, before)]
    opt.unperturb()
    return eps


def test_groups_with_different_rho_share_one_norm():
    torch.manual_seed(0)
    a, b = (
        nn.Parameter(torch.randn(3, 4, dtype=torch.float64)),
        nn.Parameter(torch.randn(5, dtype=torch.float64)),
    )
    a.grad, b.grad = torch.randn_like(a), torch.randn_like(b)
    opt = SAM([{"params": [a], "rho": 0.1}, {"params": [b], "rho": 0.3}], torch.optim.SGD, lr=0.1)
    ea, eb = _perturbation(opt, [a, b])
    norm = torch.cat([a.grad.reshape(-1), b.grad.reshape(-1)]).norm()
    torch.testing.assert_close(ea, 0.1 * a.grad / norm)
    torch.testing.assert_close(eb, 0.3 * b.grad / norm)


def test_one_group_setting_is_unchanged_by_the_split():
    """Equal rho in two groups is exactly SAM over one group (one norm, same numbers)."""
    torch.manual_seed(1)
    a, b = nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(5))
    a.grad, b.grad = torch.randn_like(a), torch.randn_like(b)
    one = _perturbation(SAM([a, b], torch.optim.SGD, lr=0.1, rho=0.2), [a, b])
    two = _perturbation(SAM([{"params": [a]}, {"params": [b]}], torch.optim.SGD, lr=0.1, rho=0.2), [a, b])
    for x, y in zip(one, two):
        assert torch.equal(x, y)


def test_groups_must_share_p():
    a, b = nn.Parameter(torch.randn(2)), nn.Parameter(torch.randn(2))
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    opt = SAM([{"params": [a], "p": 2.0}, {"params": [b], "p": math.inf}], torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match=r"share p .* got p = \[2.0, inf\]"):
        opt.first_step()


def test_asam_default_scales_biases_too():
    torch.manual_seed(2)
    lin = nn.Linear(3, 2).double()
    for p in lin.parameters():
        p.grad = torch.randn_like(p)
    eta, rho = 0.01, 0.5
    opt = create("asam", lin, lr=0.1, rho=rho, eta=eta)
    ew, eb = _perturbation(opt, [lin.weight, lin.bias])
    tw, tb = lin.weight.abs() + eta, lin.bias.abs() + eta
    norm = torch.cat([(tw * lin.weight.grad).reshape(-1), tb * lin.bias.grad]).norm()
    torch.testing.assert_close(ew, rho * tw**2 * lin.weight.grad / norm)
    torch.testing.assert_close(eb, rho * tb**2 * lin.bias.grad / norm)


def test_asam_weights_only_follows_kwon_et_al_code():
    """T_w = |w| + eta on ``*weight*`` parameters, T = 1 on the rest, one norm over all of them."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    named = dict(model.named_parameters())
    for p in named.values():
        p.grad = torch.randn_like(p)
    eta, rho = 0.01, 0.5
    opt = create("asam", model, lr=0.1, rho=rho, eta=eta, adaptive_params="weights")
    assert [g["adaptive"] for g in opt.param_groups] == [True, False]
    scale = {n: (p.abs() + eta if "weight" in n else torch.ones_like(p)) for n, p in named.items()}
    norm = torch.cat([(scale[n] * p.grad).reshape(-1) for n, p in named.items()]).norm()
    eps = _perturbation(opt, list(named.values()))
    for (n, p), e in zip(named.items(), eps):
        torch.testing.assert_close(e, rho * scale[n] ** 2 * p.grad / norm, msg=n)


def test_weight_groups_and_refusals():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, bias=False))
    groups = weight_groups(model)
    assert [len(g["params"]) for g in groups] == [2, 1] and groups[1]["adaptive"] is False
    with pytest.raises(ValueError, match="needs a model"):
        create("asam", list(model.parameters()), lr=0.1, adaptive_params="weights")
    with pytest.raises(ValueError, match="applies to 'asam' only"):
        create("sam", model, lr=0.1, adaptive_params="weights")
    with pytest.raises(ValueError, match="'biases'"):
        create("asam", model, lr=0.1, adaptive_params="biases")
    with pytest.raises(ValueError, match="rho must be a finite number >= 0, got inf"):
        create("sam", model, lr=0.1, rho=math.inf)
