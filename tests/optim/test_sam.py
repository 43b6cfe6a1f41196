"""SAM/ASAM against the seeds' perturbation formula written plainly, BatchNorm, GradScaler and 2-rank DDP."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.distributed as dist
from torch import nn

from descentlab.optim.sam import SAM, disable_running_stats
from gloo_ranks import leave, spawn_ranks

# f(w) = 0.5 w^T A w + b^T w over two parameters (a 3-vector and a 2 x 2 matrix, 7 coordinates in all).
_GEN = torch.Generator().manual_seed(0)
_M = torch.randn(7, 7, generator=_GEN, dtype=torch.float64)
A = _M @ _M.T + torch.eye(7, dtype=torch.float64)
B = torch.randn(7, generator=_GEN, dtype=torch.float64)
W0 = torch.randn(7, generator=_GEN, dtype=torch.float64)


def _loss(flat: torch.Tensor) -> torch.Tensor:
    return 0.5 * flat @ A @ flat + B @ flat


def _grad(flat: torch.Tensor) -> torch.Tensor:
    return A @ flat + B


def _params():
    return [nn.Parameter(W0[:3].clone()), nn.Parameter(W0[3:].clone().reshape(2, 2))]


def _closure_for(params, opt):
    def closure():
        opt.zero_grad()
        loss = _loss(torch.cat([p.reshape(-1) for p in params]))
        loss.backward()
        return loss

    return closure


def _hand_eps(g: torch.Tensor, rho: float, p: float) -> torch.Tensor:
    """The seeds' formula, written literally: rho sign(g) |g|^(q-1) / (||g||_q^q)^(1/p)."""
    if math.isinf(p):
        return rho * torch.sign(g)
    if p == 1.0:  # the limit q -> inf: all of rho on the largest |g_i|
        e = torch.zeros_like(g)
        i = g.abs().argmax()
        e[i] = rho * torch.sign(g[i])
        return e
    q = p / (p - 1)
    return rho * torch.sign(g) * g.abs() ** (q - 1) / (g.abs() ** q).sum() ** (1 / p)


@pytest.mark.parametrize("p", [2.0, math.inf, 1.5, 1.0, 3.0])
@pytest.mark.parametrize("adaptive", [False, True])
def test_one_step_on_quadratic_equals_hand_formula(p, adaptive):
    rho, lr, eta = 0.1, 0.05, 0.01
    params = _params()
    opt = SAM(params, torch.optim.SGD, rho=rho, p=p, adaptive=adaptive, eta=eta, lr=lr)
    loss = opt.step(_closure_for(params, opt))
    g = _grad(W0)
    if adaptive:  # Kwon et al. 2021: perturbation of T_w g, scaled by T_w = |w| + eta
        t = W0.abs() + eta
        eps = t * _hand_eps(t * g, rho, p)
    else:
        eps = _hand_eps(g, rho, p)
    expected = W0 - lr * _grad(W0 + eps)
    got = torch.cat([q.detach().reshape(-1) for q in params])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss, _loss(W0))  # step returns the loss at w
    if not adaptive:
        assert torch.linalg.vector_norm(eps, ord=p).item() == pytest.approx(rho, rel=1e-12)


def test_asam_p2_closed_form():
    rho, eta = 0.5, 0.01
    params = _params()
    opt = SAM(params, torch.optim.SGD, rho=rho, adaptive=True, eta=eta, lr=1.0)
    opt.step(_closure_for(params, opt))
    g, t = _grad(W0), W0.abs() + eta
    eps = rho * t**2 * g / torch.linalg.vector_norm(t * g)  # Kwon et al. 2021, eq. for p = 2
    torch.testing.assert_close(torch.cat([q.detach().reshape(-1) for q in params]), W0 - _grad(W0 + eps))


def test_two_step_api_equals_step_closure_with_momentum_base():
    pa, pb = _params(), _params()
    oa = SAM(pa, torch.optim.SGD, rho=0.05, lr=0.02, momentum=0.9)
    ob = SAM(pb, torch.optim.SGD, rho=0.05, lr=0.02, momentum=0.9)
    ca = _closure_for(pa, oa)
    for _ in range(4):
        oa.step(ca)
        ob.zero_grad()
        _loss(torch.cat([p.reshape(-1) for p in pb])).backward()
        ob.first_step(zero_grad=True)
        _loss(torch.cat([p.reshape(-1) for p in pb])).backward()
        ob.second_step(zero_grad=True)
    for a, b in zip(pa, pb):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_param_groups_shared_with_base_and_lr_scheduler():
    params = _params()
    opt = SAM(
        [{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.01}], torch.optim.SGD, lr=0.5
    )
    assert opt.param_groups is opt.base_optimizer.param_groups
    assert opt.state is opt.base_optimizer.state
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.step(_closure_for(params, opt))
    sched.step()
    assert [g["lr"] for g in opt.base_optimizer.param_groups] == [0.05, 0.005]


def test_state_dict_round_trip_into_fresh_model():
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    init = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def make():
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        model.load_state_dict(init.state_dict())
        opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.05, momentum=0.9)

        def closure():
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        return model, opt, closure

    ma, oa, ca = make()
    for _ in range(3):
        oa.step(ca)
    buf = io.BytesIO()
    torch.save({"model": ma.state_dict(), "opt": oa.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    mb, ob, cb = make()
    mb.load_state_dict(ckpt["model"])
    ob.load_state_dict(ckpt["opt"])
    assert ob.param_groups is ob.base_optimizer.param_groups and ob.state is ob.base_optimizer.state
    for _ in range(3):
        la, lb = oa.step(ca), ob.step(cb)
        assert la.item() == lb.item()
    for a, b in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(a, b)


def test_batchnorm_running_stats_untouched_on_perturbed_pass():
    torch.manual_seed(1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    reference = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    reference.load_state_dict(model.state_dict())
    opt = SAM(model.parameters(), torch.optim.SGD, lr=0.1, model=model)

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        reference(x)  # one forward at w: the statistics SAM must end with
    bn, ref_bn = model[1], reference[1]
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)
    torch.testing.assert_close(bn.running_var, ref_bn.running_var)
    assert bn.num_batches_tracked.item() == 1

    with disable_running_stats(model):
        model(x + 1.0)
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)


def test_grad_scaler_recipe_matches_unscaled_run():
    torch.manual_seed(2)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    init = nn.Linear(4, 1)
    runs = []
    for scaled in (False, True):
        model = nn.Linear(4, 1)
        model.load_state_dict(init.state_dict())
        opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, enabled=scaled)
        for _ in range(3):
            opt.zero_grad()
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            scaler.unscale_(opt)
            opt.first_step(zero_grad=True)
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            opt.unperturb()
            scaler.step(opt.base_optimizer)
            scaler.update()
        runs.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_non_finite_first_gradient_means_no_perturbation():
    params = _params()
    opt = SAM(params, torch.optim.SGD, lr=0.1)
    for p in params:
        p.grad = torch.full_like(p, float("inf"))
    before = [p.detach().clone() for p in params]
    opt.first_step()
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b)
    opt.unperturb()


def _ddp_worker(rank: int, world: int, init_file: str, out_file: str, x, y, state) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = nn.Linear(4, 2)
        model.load_state_dict(state)
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = SAM(ddp.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
        xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]
        for _ in range(3):
            with ddp.no_sync():
                nn.functional.mse_loss(ddp(xs), ys).backward()
            opt.first_step(zero_grad=True)
            nn.functional.mse_loss(ddp(xs), ys).backward()
            opt.second_step(zero_grad=True)
        if rank == 0:
            torch.save(model.state_dict(), out_file)
        del ddp
    except BaseException:
        dist.destroy_process_group()
        raise
    leave(rank)


def test_ddp_two_gloo_ranks_equal_single_process_on_concatenated_batch(tmp_path):
    torch.manual_seed(3)
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    model = nn.Linear(4, 2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = tmp_path / "rank0.pt"
    spawn_ranks(_ddp_worker, (2, str(tmp_path / "init"), str(out), x, y, state))

    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
    for _ in range(3):

        def closure():
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)
    got = torch.load(out, weights_only=True)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6)


def test_step_without_closure_raises():
    opt = SAM(_params(), torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="closure"):
        opt.step()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"rho": -0.1}, "rho"),
        ({"p": 0.5}, "p must"),
        ({"eta": -1.0}, "eta"),
        ({"adaptive": "yes"}, "adaptive"),
    ],
)
def test_invalid_hyperparameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SAM(_params(), torch.optim.SGD, lr=0.1, **kwargs)


def test_base_optimizer_instance_is_rejected():
    params = _params()
    with pytest.raises(TypeError, match="base_optimizer"):
        SAM(params, torch.optim.SGD(params, lr=0.1))


def test_registry_sam_and_asam_wrap_sgd_with_momentum():
    from descentlab.optim import available, create

    if "sgd" not in available():
        pytest.skip("torch classics not registered yet")
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    sam = create("sam", model, lr=0.1)
    asam = create("asam", model, lr=0.1)
    assert isinstance(sam.base_optimizer, torch.optim.SGD) and sam.param_groups[0]["momentum"] == 0.9
    assert asam.param_groups[0]["adaptive"] and asam.model is model
    adamw = create("sam", model, base="adamw", lr=1e-3, rho=0.02)
    assert isinstance(adamw.base_optimizer, torch.optim.AdamW) and adamw.param_groups[0]["rho"] == 0.02
