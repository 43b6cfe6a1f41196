"""torch's classics and Schedule-Free in the registry: the right classes, kernel defaults, fallbacks, errors."""

from __future__ import annotations

import pytest
import schedulefree
import torch
from torch import nn

from descentlab import optim
from descentlab.optim import torch_classics

TORCH_CLASSES = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "asgd": torch.optim.ASGD,
    "rprop": torch.optim.Rprop,
    "lbfgs": torch.optim.LBFGS,
    "adafactor": torch.optim.Adafactor,
    "amsgrad": torch.optim.Adam,
}


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


@pytest.mark.parametrize("name, cls", sorted(TORCH_CLASSES.items()))
def test_registry_builds_the_torch_class(name, cls):
    assert name in optim.available()
    m = model()
    opt = optim.create(name, m)
    assert isinstance(opt, cls)
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in m.parameters()}
    assert optim.describe()[name]


def test_amsgrad_is_adam_with_amsgrad():
    opt = optim.create("amsgrad", model(), lr=0.01)
    assert opt.param_groups[0]["amsgrad"] is True and opt.param_groups[0]["lr"] == 0.01
    with pytest.raises(ValueError, match="amsgrad"):
        optim.create("amsgrad", model(), amsgrad=False)


def test_hyper_parameters_pass_through_and_frozen_params_are_left_out():
    m = model()
    m[0].weight.requires_grad_(False)
    opt = optim.create("sgd", m, lr=0.3, momentum=0.9, nesterov=True, weight_decay=1e-4)
    g = opt.param_groups[0]
    assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) == (0.3, 0.9, True, 1e-4)
    assert all(p is not m[0].weight for p in g["params"])
    groups = [{"params": m[2].parameters(), "lr": 0.1}, {"params": [m[0].bias]}]
    opt = optim.create("adam", groups, lr=1e-3)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1e-3]


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean 'adam'"):
        optim.create("adamm", model())
    with pytest.raises(ValueError, match="unknown optimizer 'RMSPRP'; did you mean 'rmsprop'"):
        optim.create("RMSPRP", model())


def test_unknown_hyper_parameter_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="momentun"):
        optim.create("sgd", model(), momentun=0.9)


# ------------------------------------------------------------------ kernel defaults (benchmarks/foreach_fused.py)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "amsgrad", "adagrad"])
def test_fused_is_the_default_for_cpu_float_params(name):
    opt = optim.create(name, model())
    assert opt.param_groups[0]["fused"] is True


def test_radam_uses_foreach_on_cpu_and_others_keep_torch_default():
    assert optim.create("radam", model()).param_groups[0]["foreach"] is True
    for name in ("rmsprop", "adamax", "nadam", "adadelta", "asgd", "rprop", "adafactor"):
        group = optim.create(name, model()).param_groups[0]
        assert group.get("foreach") is None and not group.get("fused"), name


def test_a_user_choice_wins():
    assert optim.create("adam", model(), foreach=True).param_groups[0]["fused"] in (None, False)
    assert optim.create("adam", model(), fused=False).param_groups[0]["fused"] is False
    assert optim.create("radam", model(), foreach=False).param_groups[0]["foreach"] is False
    assert not optim.create("sgd", model(), differentiable=True).param_groups[0]["fused"]


def test_no_fused_where_torch_has_no_fused_kernel():
    meta = [nn.Parameter(torch.empty(3, 3, device="meta"))]
    assert torch_classics.kernel_kwargs("adam", meta, {}) == {}
    assert torch_classics.kernel_kwargs("adam", [{"params": meta}], {}) == {}
    assert torch_classics.kernel_kwargs("adam", [nn.Parameter(torch.zeros(2))], {"fused": False}) == {}
    mixed = [nn.Parameter(torch.zeros(2)), meta[0]]
    assert torch_classics.kernel_kwargs("sgd", mixed, {}) == {}
    opt = optim.create("adam", meta)
    assert not opt.param_groups[0]["fused"]


def test_falls_back_when_torch_refuses_the_kernel(monkeypatch):
    # Adamax has no fused kernel: a (hypothetical) fused default must fall back to torch's own default.
    monkeypatch.setitem(torch_classics.KERNEL_DEFAULTS, "adamax", "fused")
    assert torch_classics.kernel_kwargs("adamax", list(model().parameters()), {}) == {"fused": True}
    opt = optim.create("adamax", model())
    assert isinstance(opt, torch.optim.Adamax)
    # errors unrelated to the kernel still surface
    with pytest.raises(ValueError, match="-1"):
        optim.create("adamax", model(), lr=-1)


def test_fused_and_plain_adam_agree_on_a_model():
    torch.manual_seed(0)
    a, b = model(), model()
    b.load_state_dict(a.state_dict())
    opt_a = optim.create("adamw", a, lr=1e-2, weight_decay=0.1)
    opt_b = optim.create("adamw", b, lr=1e-2, weight_decay=0.1, fused=False, foreach=False)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    for _ in range(10):
        for m, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ Schedule-Free (external.py)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("schedulefree_adamw", schedulefree.AdamWScheduleFree),
        ("schedulefree_sgd", schedulefree.SGDScheduleFree),
    ],
)
def test_schedulefree_in_train_mode_and_described(name, cls):
    opt = optim.create(name, model())
    assert isinstance(opt, cls)
    assert all(g["train_mode"] for g in opt.param_groups)
    assert "train()" in optim.describe()[name] and "eval()" in optim.describe()[name]


def test_schedulefree_eval_point_is_the_average():
    # Defazio et al. 2024: training steps at y = (1 - beta) z + beta x; eval() moves the weights to x.
    m = nn.Linear(3, 1)
    opt = optim.create("schedulefree_sgd", m, lr=0.1, momentum=0.9)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.mse_loss(m(x), y).backward()
        opt.step()
    y_point = m.weight.detach().clone()
    opt.eval()
    x_point = m.weight.detach().clone()
    z = opt.state[m.weight]["z"]
    torch.testing.assert_close(y_point, 0.1 * z + 0.9 * x_point, rtol=1e-5, atol=1e-6)
    opt.train()
    torch.testing.assert_close(m.weight.detach(), y_point, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name, kw, match",
    [
        ("schedulefree_adamw", {"lr": -0.5}, "-0.5"),
        ("schedulefree_adamw", {"weight_decay": -1.0}, "weight_decay"),
        ("schedulefree_adamw", {"betas": (0.9, 1.5)}, "betas"),
        ("schedulefree_adamw", {"warmup_steps": -3}, "warmup_steps"),
        ("schedulefree_sgd", {"momentum": 1.0}, "momentum"),
        ("schedulefree_sgd", {"nonsense": 1.0}, "nonsense"),
    ],
)
def test_schedulefree_bad_hyper_parameters(name, kw, match):
    with pytest.raises(ValueError, match=match):
        optim.create(name, model(), **kw)
