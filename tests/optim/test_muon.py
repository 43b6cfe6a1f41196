"""Muon against torch.optim.Muon run in fp32, torch.optim.AdamW, the seeds' properties, and a 2-rank gloo run."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
import torch.optim._muon as torch_muon_module
from torch import nn

from descentlab.optim import create
from descentlab.optim.muon import Muon, muon_param_groups
from descentlab.optim.orthogonalize import orthogonalize, singular_value_band
from gloo_ranks import leave, spawn_ranks


def fp32_newton_schulz(grad, ns_coefficients, ns_steps, eps):
    """torch.optim.Muon's Newton–Schulz, restated without its bf16 cast."""
    a, b, c = ns_coefficients
    X = grad.float()
    tall = X.size(0) > X.size(1)
    if tall:
        X = X.T
    X = X / X.norm().clamp(min=eps)
    for _ in range(ns_steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def make_matrices(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(8, 8), (8, 8), (6, 20), (20, 6), (5, 5)]
    return [nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


def run(opt_factory, params, steps=5, loss_scale=1.0, seed=1):
    opt = opt_factory(params)
    g = torch.Generator().manual_seed(seed)
    targets = [torch.randn(p.shape, generator=g) for p in params]
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_scale * sum(((p - t) ** 3).abs().sum() for p, t in zip(params, targets))
        loss.backward()
        opt.step()
    return opt


@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_torch_muon_in_fp32(monkeypatch, adjust, nesterov):
    monkeypatch.setattr(torch_muon_module, "_zeropower_via_newtonschulz", fp32_newton_schulz)
    hp = dict(lr=0.02, momentum=0.9, nesterov=nesterov, weight_decay=0.1)
    ref = make_matrices()
    run(lambda ps: torch.optim.Muon(ps, adjust_lr_fn=adjust, **hp), ref)
    ours = make_matrices()
    run(lambda ps: Muon(ps, adjust_lr=adjust, ns_dtype=torch.float32, **hp), ours)
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=0)


def test_adjust_lr_none_and_svd_step_is_exactly_minus_lr_u_vt():
    W = nn.Parameter(torch.randn(6, 9, dtype=torch.float64))
    W0 = W.detach().clone()
    opt = Muon([W], lr=0.1, momentum=0.0, nesterov=False, adjust_lr=None, ns_method="svd")
    W.grad = torch.randn(6, 9, dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(W.detach(), W0 - 0.1 * orthogonalize(W.grad, method="svd"))


def test_conv_weight_is_flattened_to_out_by_rest():
    W = nn.Parameter(torch.randn(4, 3, 2, 2, dtype=torch.float64))
    W0 = W.detach().clone()
    W.grad = torch.randn_like(W)
    Muon([W], lr=1.0, momentum=0.0, nesterov=False, adjust_lr=None, ns_method="svd").step()
    expected = W0 - orthogonalize(W.grad.reshape(4, 12), method="svd").view(4, 3, 2, 2)
    torch.testing.assert_close(W.detach(), expected)


def test_update_singular_values_are_near_equal():
    W = nn.Parameter(torch.zeros(32, 64))
    W.grad = torch.randn(32, 16) @ torch.randn(16, 64) + 0.1 * torch.randn(32, 64)  # anisotropic gradient
    Muon([W], lr=1.0, momentum=0.0, adjust_lr=None).step()
    lo, hi = singular_value_band(-W.detach())
    assert 0.5 < lo and hi < 1.3  # NS band around 1, while the gradient's spectrum spans decades
    lo_g, hi_g = singular_value_band(W.grad)
    assert hi_g / lo_g > 10


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_loss_scale_invariance(scale):
    base, scaled = make_matrices(), make_matrices()
    run(lambda ps: Muon(ps, ns_dtype=torch.float32), base)
    run(lambda ps: Muon(ps, ns_dtype=torch.float32), scaled, loss_scale=scale)
    for p, q in zip(base, scaled):
        torch.testing.assert_close(p, q, atol=2e-5, rtol=0)


def test_one_state_tensor_per_muon_parameter_and_adamw_state_like_torch():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    opt = create("muon", model)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    for group in opt.param_groups:
        for p in group["params"]:
            keys = set(opt.state[p])
            assert keys == ({"momentum_buffer"} if group["use_muon"] else {"step", "exp_avg", "exp_avg_sq"})


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.conv = nn.Conv1d(6, 6, 3, padding=1)
        self.hidden = nn.Linear(6, 12)
        self.norm = nn.LayerNorm(12)
        self.out = nn.Linear(12, 5)

    def forward(self, x):
        h = self.embed(x).transpose(1, 2)
        h = self.conv(h).mean(-1)
        return self.out(self.norm(torch.relu(self.hidden(h))))


def test_param_groups_route_hidden_matrices_to_muon_and_the_rest_to_adamw():
    model = Tiny()
    groups = muon_param_groups(model, lr=1e-3)
    muon = {id(p) for g in groups if g["use_muon"] for p in g["params"]}
    assert muon == {id(model.conv.weight), id(model.hidden.weight)}
    adam = next(g for g in groups if not g["use_muon"])
    assert adam["lr"] == 1e-3 and len(adam["params"]) == len(list(model.parameters())) - 2
    by_name = muon_param_groups(model, head="hidden")
    muon = {id(p) for g in by_name if g["use_muon"] for p in g["params"]}
    assert muon == {id(model.conv.weight), id(model.out.weight)}
    with pytest.raises(ValueError, match="nope"):
        muon_param_groups(model, head="nope")


def test_adamw_groups_match_torch_adamw():
    model = Tiny()
    ref_model = copy.deepcopy(model)
    hp = dict(lr=1e-2, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05)
    opt = Muon(muon_param_groups(model, **hp), lr=0.0)  # Muon matrices frozen: the reference never moves them
    ref_adam_params = [
        p for n, p in ref_model.named_parameters() if n not in ("conv.weight", "hidden.weight")
    ]
    ref = torch.optim.AdamW(ref_adam_params, **hp)
    x = torch.randint(0, 11, (4, 7))
    for _ in range(4):
        for m, o in ((model, opt), (ref_model, ref)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    torch.testing.assert_close(model.out.weight, ref_model.out.weight)
    torch.testing.assert_close(model.embed.weight, ref_model.embed.weight)
    torch.testing.assert_close(model.norm.bias, ref_model.norm.bias)


def test_state_dict_round_trip_into_a_fresh_model():
    torch.manual_seed(0)
    model = Tiny()
    x = torch.randint(0, 11, (4, 7))

    def train(m, o, steps):
        for _ in range(steps):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()

    opt = create("muon", model)
    train(model, opt, 3)
    fresh = copy.deepcopy(model)
    fresh_opt = create("muon", fresh)
    fresh_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    train(model, opt, 3)
    train(fresh, fresh_opt, 3)
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)


def test_plain_params_vectors_raise_in_the_class_and_route_in_the_registry():
    w, b = nn.Parameter(torch.randn(4, 5)), nn.Parameter(torch.zeros(4))
    with pytest.raises(ValueError, match="muon_param_groups"):
        Muon([w, b])
    opt = create("muon", [w, b], lr=0.01)
    assert [g["use_muon"] for g in opt.param_groups] == [True, False]
    assert opt.param_groups[1]["lr"] == pytest.approx(3e-4 * 0.01 / 0.02)  # the AdamW lr scales with lr
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got 0.0"):
        create("muon", [w, b], lr=0.0)  # lr = 0 is refused by the registry, not taken as "frozen"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "-1.0"),
        ({"momentum": 1.0}, "momentum"),
        ({"ns_method": "qr"}, "qr"),
        ({"ns_steps": 0}, "ns_steps"),
        ({"adjust_lr": "sqrt"}, "sqrt"),
        ({"weight_decay": -0.1}, "-0.1"),
        ({"betas": (0.9, 1.5)}, "1.5"),
    ],
)
def test_invalid_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Muon([nn.Parameter(torch.randn(3, 3))], **kwargs)


def _distributed_worker(rank, world, init_file, steps, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    params = make_matrices()
    run(lambda ps: Muon(ps, ns_dtype=torch.float32), params, steps=steps)
    if rank == 0:
        torch.save([p.detach() for p in params], out_file)
    leave(rank)


def test_two_gloo_ranks_equal_the_single_process_run(tmp_path):
    single = make_matrices()
    run(lambda ps: Muon(ps, ns_dtype=torch.float32), single, steps=3)
    out_file = tmp_path / "params.pt"
    spawn_ranks(_distributed_worker, (2, str(tmp_path / "init"), 3, str(out_file)))
    for p, q in zip(torch.load(out_file), single):
        torch.testing.assert_close(p, q.detach(), atol=1e-6, rtol=0)
