"""One harness over every optimizer in the registry (the idea of torch's OptimizerInfo / test_optim.py).

For each name in ``descentlab.optim.available()`` (collected at import, so methods added later are covered):
(a) state_dict round trip into a *new* model and optimizer, through ``torch.save`` / ``torch.load(weights_only)``;
(b) two param groups with different lr (a group at lr 0 stays put, the other moves);
(c) lr = 1e-28 does not move the parameters;
(d) ``step(closure)`` returns the closure's loss at the current weights;
(e) lr = -1 raises ValueError naming -1;
(f) convergence on a 2-D quadratic and on Rosenbrock within a per-name budget.

Per-name settings live in SPECS below; a name missing there runs with its defaults. To add a method, add one entry.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from torch import nn

from descentlab import optim

# name -> settings. Keys (all optional):
#   kw:         extra hyper-parameters for every test (besides lr)
#   lr:         lr for the small-MLP tests (default: the optimizer's own default)
#   groups:     a reason string to skip (b)
#   tiny_lr:    a reason string to skip (b)'s lr-0 check and (c), or a dict of extra kwargs that make them apply
#   quadratic / rosenbrock: {"lr": .., "steps": .., **extra kwargs}, or a reason string to skip
# Rosenbrock starts at (-1, 1) (f = 4) and must reach f < 0.05; the quadratic starts at (1, 1) and must reach 1e-3.
SPECS: dict[str, dict[str, Any]] = {
    "sgd": {
        "quadratic": {"lr": 0.03, "steps": 300},
        "rosenbrock": {"lr": 1e-3, "momentum": 0.9, "steps": 1000},
    },
    "sgdw": {  # pytorch_optimizer's default lr is 1e-4: the settings of sgd
        "quadratic": {"lr": 0.03, "steps": 300},
        "rosenbrock": {"lr": 1e-3, "momentum": 0.9, "steps": 1000},
    },
    "adam": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.03, "steps": 1000}},
    "adamw": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 1000}},
    "algoperf_adamw": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 1000}},
    "algoperf_nadamw": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 1000}},
    "amsgrad": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.03, "steps": 1000}},
    "adamax": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 1.0, "steps": 1000}},
    "nadam": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 1000}},
    "radam": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 3e-3, "steps": 3000}},
    "adagrad": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.5, "steps": 3000}},
    "rmsprop": {"quadratic": {"lr": 0.01, "steps": 300}, "rosenbrock": {"lr": 3e-3, "steps": 2000}},
    "asgd": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 1e-3, "steps": 3000}},
    # lr multiplies Zeiler's lr-free step; 3000 steps on Rosenbrock only reach f = 0.1 (lr 0.3).
    "adadelta": {
        "quadratic": {"lr": 3.0, "steps": 300},
        "rosenbrock": "lr-free steps too slow: f = 0.1 after 3000",
    },
    # Adafactor's relative step and update clipping stall in the curved valley (f = 0.057 after 3000 steps).
    "adafactor": {
        "quadratic": {"lr": 0.1, "steps": 300},
        "rosenbrock": "stalls at f = 0.057 after 3000 steps",
    },
    # Rprop's lr is the initial step size and steps are clamped to step_sizes=(1e-6, 50): allow tiny steps.
    "rprop": {
        "tiny_lr": {"step_sizes": (0.0, 50.0)},
        "quadratic": {"lr": 0.01, "steps": 300},
        "rosenbrock": {"lr": 1.0, "steps": 1000},
    },
    "lbfgs": {
        "groups": "torch's LBFGS supports one param group only (ValueError otherwise)",
        "quadratic": {"lr": 1.0, "steps": 10},
        "rosenbrock": {"lr": 1.0, "steps": 20},
    },
    "schedulefree_adamw": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 1000}},
    "schedulefree_sgd": {"quadratic": {"lr": 0.3, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 2000}},
    # descentlab's own methods
    "muon": {
        "quadratic": {"lr": 0.02, "lr_adam": 0.01, "steps": 300},  # a 1-D point: all on the AdamW side
        "rosenbrock": {"lr": 0.02, "lr_adam": 3e-3, "steps": 1000},
    },
    "shampoo": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.03, "steps": 1000}},
    "sam": {"quadratic": {"lr": 1e-3, "steps": 300}, "rosenbrock": {"lr": 1e-3, "rho": 0.005, "steps": 2000}},
    # |w|-scaled perturbations throw ASAM out of Rosenbrock's valley (f = 0.19 after 2000 steps, lr 1e-3).
    "asam": {
        "quadratic": {"lr": 3e-3, "steps": 300},
        "rosenbrock": "perturbation leaves the valley: f = 0.19",
    },
    "lookahead": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.1, "steps": 1000}},
    # evaluation-time averages (eval() swaps them in): base AdamW, recent snapshots only
    "lawa": {
        "quadratic": {"lr": 0.03, "steps": 300, "k": 3, "every": 5},
        "rosenbrock": {"lr": 0.01, "steps": 1000, "k": 3, "every": 5},
    },
    "ema": {
        "quadratic": {"lr": 0.03, "steps": 300, "decay": 0.9},
        "rosenbrock": {"lr": 0.01, "steps": 1000, "decay": 0.9},
    },
    # the base (AdamW) trains and is evaluated as alone; the averages sit on the side (bench's shared trainings)
    "side_averages": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 1000}},
    "grokfast": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 1000}},
    "signsgd": {
        "quadratic": {"lr": 0.01, "steps": 300},
        "rosenbrock": "fixed-size sign steps zig-zag: f = 0.1",
    },
    "signum": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 3e-3, "steps": 1000}},
    "normalized_sgd": {"quadratic": {"lr": 0.01, "steps": 300}, "rosenbrock": {"lr": 3e-3, "steps": 2000}},
    "steepest": {"quadratic": {"lr": 0.01, "steps": 300}, "rosenbrock": {"lr": 3e-3, "steps": 2000}},
    "spectral": {},
    # pytorch_optimizer's methods (descentlab.optim.collection) and the lab's Muon variants / cautious wrapper
    "soap": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.1, "steps": 1000}},
    "ademamix": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.01, "steps": 3000}},
    "mars": {"quadratic": {"lr": 0.3, "steps": 300}, "rosenbrock": {"lr": 0.1, "steps": 1000}},
    "lion": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 3e-3, "steps": 3000}},
    "adopt": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.03, "steps": 2000}},
    "scion": {"quadratic": {"lr": 0.03, "steps": 300}, "rosenbrock": {"lr": 3e-3, "steps": 1000}},
    "prodigy": {"quadratic": {"lr": 1.0, "steps": 300}, "rosenbrock": {"lr": 1.0, "steps": 1000}},
    "dadapt_adam": {"quadratic": {"lr": 1.0, "steps": 300}, "rosenbrock": {"lr": 1.0, "steps": 1000}},
    "cautious": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.03, "steps": 1000}},
    "clipped": {"quadratic": {"lr": 0.1, "steps": 300}, "rosenbrock": {"lr": 0.03, "steps": 1000}},
    # a 2-D point is a 1-D parameter: all on the AdamW side (lr_adam = lr)
    "normuon": {"quadratic": {"lr": 0.3, "steps": 300}, "rosenbrock": {"lr": 0.1, "steps": 1000}},
    "adamuon": {"quadratic": {"lr": 0.3, "steps": 300}, "rosenbrock": {"lr": 0.1, "steps": 1000}},
    "polargrad": {"quadratic": {"lr": 0.3, "steps": 300}, "rosenbrock": {"lr": 0.1, "steps": 1000}},
    "po_normuon": {"quadratic": {"lr": 0.3, "steps": 300}, "rosenbrock": {"lr": 0.3, "steps": 1000}},
    "po_adamuon": {"quadratic": {"lr": 0.3, "steps": 300}, "rosenbrock": {"lr": 0.3, "steps": 1000}},
}
NAMES = optim.available()
QUADRATIC_TARGET, ROSENBROCK_TARGET = 1e-3, 0.05


def spec(name: str) -> dict[str, Any]:
    return SPECS.get(name, {})


def make(name: str, params_or_model, **hp) -> torch.optim.Optimizer:
    return optim.create(name, params_or_model, **{**spec(name).get("kw", {}), **hp})


def mlp(seed: int) -> nn.Module:
    """A tiny MLP: 2-D weights and 1-D biases (so methods that route matrices have something to route)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(16, 4, generator=g), torch.randn(16, 3, generator=g)


def closure_for(model: nn.Module, opt: torch.optim.Optimizer, step: int):
    x, y = batch(step)

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    return closure


def train(model: nn.Module, opt: torch.optim.Optimizer, start: int, steps: int) -> None:
    if hasattr(opt, "train"):
        opt.train()
    for step in range(start, start + steps):
        opt.step(closure_for(model, opt, step))


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def tiny_lr_setting(name: str) -> dict[str, Any]:
    tiny = spec(name).get("tiny_lr", {})
    if isinstance(tiny, str):
        pytest.skip(f"{name}: lr is not a step size ({tiny})")
    return tiny


# ------------------------------------------------------------------ (a) state_dict round trip


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_into_a_new_model(name):
    model = mlp(0)
    opt = make(name, model, **({"lr": spec(name)["lr"]} if "lr" in spec(name) else {}))
    train(model, opt, 0, 5)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    model2 = mlp(1)
    opt2 = make(name, model2, **({"lr": spec(name)["lr"]} if "lr" in spec(name) else {}))
    assert not torch.equal(flat(model), flat(model2))
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["optimizer"])

    train(model, opt, 5, 5)
    train(model2, opt2, 5, 5)
    torch.testing.assert_close(flat(model2), flat(model), rtol=0, atol=0)


# ------------------------------------------------------------------ (b) param groups


@pytest.mark.parametrize("name", NAMES)
def test_two_param_groups_with_different_lr(name):
    if isinstance(spec(name).get("groups"), str):
        pytest.skip(f"{name}: {spec(name)['groups']}")
    model = mlp(0)
    lr = spec(name).get("lr") or float(make(name, mlp(0)).param_groups[0]["lr"])
    tiny = spec(name).get("tiny_lr", {})
    frozen_lr = 0.0 if not isinstance(tiny, str) else lr * 0.1
    first = list(model[0].parameters())
    rest = [p for m in (model[2], model[4]) for p in m.parameters()]
    groups = [{"params": first, "lr": lr}, {"params": rest, "lr": frozen_lr}]
    kw = tiny if isinstance(tiny, dict) else {}
    opt = make(name, groups, lr=lr, **kw)
    before_first = [p.detach().clone() for p in first]
    before_rest = [p.detach().clone() for p in rest]
    train(model, opt, 0, 3)
    assert any(not torch.equal(p, q) for p, q in zip(first, before_first)), "the lr group did not move"
    if frozen_lr == 0.0:
        assert all(torch.equal(p, q) for p, q in zip(rest, before_rest)), "the lr=0 group moved"
    else:  # lr is not a step size here: both move, with the groups' lrs kept
        assert {g["lr"] for g in opt.param_groups} >= {lr, frozen_lr}


# ------------------------------------------------------------------ (c) lr = 1e-28


@pytest.mark.parametrize("name", NAMES)
def test_tiny_lr_does_not_move(name):
    kw = tiny_lr_setting(name)
    model = mlp(0)
    opt = make(name, model, lr=1e-28, **kw)
    before = flat(model).clone()
    train(model, opt, 0, 3)
    torch.testing.assert_close(flat(model), before, rtol=0, atol=0)


# ------------------------------------------------------------------ (d) closure


@pytest.mark.parametrize("name", NAMES)
def test_step_with_closure_returns_the_loss(name):
    model = mlp(0)
    opt = make(name, model)
    if hasattr(opt, "train"):
        opt.train()
    for step in range(2):
        x, y = batch(step)
        with torch.no_grad():
            expected = nn.functional.mse_loss(model(x), y).item()
        loss = opt.step(closure_for(model, opt, step))
        assert isinstance(loss, torch.Tensor), f"step(closure) returned {loss!r}"
        assert loss.item() == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ (e) invalid hyper-parameters


@pytest.mark.parametrize("name", NAMES)
def test_negative_lr_raises_naming_it(name):
    with pytest.raises(ValueError, match="-1"):
        make(name, mlp(0), lr=-1)


# ------------------------------------------------------------------ (f) convergence


class Point(nn.Module):
    """A 2-D point as a model, so that methods that route by module see a 1-D parameter."""

    def __init__(self, x: float, y: float):
        super().__init__()
        self.xy = nn.Parameter(torch.tensor([x, y], dtype=torch.float64))


def quadratic(xy: torch.Tensor) -> torch.Tensor:
    """f(x, y) = (x^2 + 10 y^2) / 2: condition number 10, minimum 0 at the origin."""
    return 0.5 * (xy[0] ** 2 + 10 * xy[1] ** 2)


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2: minimum 0 at (1, 1)."""
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


PROBLEMS = {
    "quadratic": (quadratic, (1.0, 1.0), QUADRATIC_TARGET),
    "rosenbrock": (rosenbrock, (-1.0, 1.0), ROSENBROCK_TARGET),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", NAMES)
def test_converges(name, problem):
    setting = spec(name).get(problem, {})
    if isinstance(setting, str):
        pytest.skip(f"{name} on {problem}: {setting}")
    setting = dict(setting)
    steps = setting.pop("steps", 1000)
    f, start, target = PROBLEMS[problem]
    point = Point(*start)
    opt = make(name, point, **setting)
    if hasattr(opt, "train"):
        opt.train()

    def closure():
        opt.zero_grad()
        loss = f(point.xy)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    if hasattr(opt, "eval"):  # Schedule-Free evaluates at the averaged point
        opt.eval()
    final = f(point.xy.detach()).item()
    assert final < target, f"{name} on {problem}: f = {final:.3g} after {steps} steps (target {target})"


def test_specs_name_only_registered_or_expected_names():
    expected_later = {"spectral"}
    assert set(SPECS) - set(NAMES) <= expected_later
