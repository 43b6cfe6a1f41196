"""Every schedule against its closed form at every step, written plainly; shapes, endpoints, bad input."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from descentlab import schedules

T = 12
LR0 = 0.5


def lr_sequence(
    name: str, total_steps: int = T, lrs=(LR0,), opt_cls=torch.optim.SGD, **kw
) -> list[list[float]]:
    """lr of every param group at every step k = 0 .. total_steps-1 (optimizer step, then scheduler step)."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    opt = opt_cls(groups)
    sched = schedules.create(name, opt, total_steps, **kw)
    seq = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "scheduler.step() before optimizer.step()"
        for _ in range(total_steps):
            seq.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
    return seq


def first_group(seq: list[list[float]]) -> list[float]:
    return [s[0] for s in seq]


# Closed forms, one per schedule, at its default keywords (T = 12, lr0 = 0.5).
def cosine_closed(k, n, r=0.0):
    return LR0 * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * k / n)))


CLOSED_FORMS = {
    "constant": ({}, [LR0] * T),
    # step_size = T // 3 = 4, gamma = 0.1
    "step": ({}, [LR0 * 0.1 ** (k // 4) for k in range(T)]),
    "exponential": ({}, [LR0 * 0.01 ** (k / T) for k in range(T)]),
    "exponential_gamma": ({"gamma": 0.9}, [LR0 * 0.9**k for k in range(T)]),
    "cosine": ({}, [cosine_closed(k, T) for k in range(T)]),
    "cosine_floor": ({"min_lr_ratio": 0.1}, [cosine_closed(k, T, 0.1) for k in range(T)]),
    "linear": ({}, [LR0 * (1 - k / T) for k in range(T)]),
    "linear_floor": ({"min_lr_ratio": 0.2}, [LR0 * (1 - 0.8 * k / T) for k in range(T)]),
    # W = ceil(0.25 * 12) = 3 warm-up steps lr0 (k+1)/3, then 9 decay steps
    "warmup_cosine": (
        {"warmup_fraction": 0.25},
        [LR0 * (k + 1) / 3 for k in range(3)] + [cosine_closed(j, 9) for j in range(9)],
    ),
    "warmup_linear": (
        {"warmup_fraction": 0.25},
        [LR0 * (k + 1) / 3 for k in range(3)] + [LR0 * (1 - j / 9) for j in range(9)],
    ),
    # triangular between 0.1 lr0 and lr0, half-period 3
    "cyclic": (
        {"step_size_up": 3},
        [LR0 * (0.1 + 0.9 * (1 - abs(k / 3 - 2 * math.floor(1 + k / 6) + 1))) for k in range(T)],
    ),
    "inverse_sqrt": ({}, [LR0 / math.sqrt(k + 1) for k in range(T)]),
    "strongly_convex": ({"mu": 2.0}, [(2 * k + 1) / (2 * 2.0 * (k + 1) ** 2) for k in range(T)]),
    # warmup 1 step (ceil(0.05*12)), stable 8, decay ceil(0.2*12) = 3 steps, linear to 0
    "wsd": ({}, [LR0] * 9 + [LR0 * (1 - j / 3) for j in range(3)]),
    "wsd_cosine": (
        {"warmup_fraction": 0.25, "decay_fraction": 0.25, "decay": "cosine", "min_lr_ratio": 0.1},
        [LR0 * (k + 1) / 3 for k in range(3)] + [LR0] * 6 + [cosine_closed(j, 3, 0.1) for j in range(3)],
    ),
}


def onecycle_closed(k: int) -> float:
    """torch's OneCycleLR (cos, pct_start 0.3): up from lr0/25 to lr0 over 0.3 T - 1 steps, then down to lr0/25e4."""
    lo, hi, end = LR0 / 25, LR0, LR0 / 25 / 1e4
    up = 0.3 * T - 1
    if k <= up:
        return hi + (lo - hi) * (1 + math.cos(math.pi * k / up)) / 2
    pct = (k - up) / (T - 1 - up)
    return end + (hi - end) * (1 + math.cos(math.pi * pct)) / 2


CLOSED_FORMS["onecycle"] = ({}, [onecycle_closed(k) for k in range(T)])


def garipov_closed(k: int) -> float:
    """Garipov et al.: lr0 up to half the steps, linear to lr0 / 100 at 90 %, held (k / T: 7/12 .. 10/12 decay)."""
    x = k / T
    return LR0 if x <= 0.5 else LR0 * (1 - 0.99 * (x - 0.5) / 0.4) if x <= 0.9 else LR0 / 100


CLOSED_FORMS["garipov"] = ({}, [garipov_closed(k) for k in range(T)])


@pytest.mark.parametrize("case", sorted(CLOSED_FORMS))
def test_schedule_matches_closed_form(case):
    name = case if case in schedules.available() else case.rsplit("_", 1)[0]
    kw, expected = CLOSED_FORMS[case]
    got = first_group(lr_sequence(name, **kw))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_every_schedule_has_a_closed_form_test():
    covered = {c if c in schedules.available() else c.rsplit("_", 1)[0] for c in CLOSED_FORMS}
    assert covered == set(schedules.available())


@pytest.mark.parametrize(
    "name", ["cosine", "warmup_linear", "cyclic", "onecycle", "wsd", "step", "inverse_sqrt"]
)
def test_each_group_scales_its_own_lr(name):
    seq = lr_sequence(name, lrs=(0.5, 0.05), opt_cls=torch.optim.Adam)
    for a, b in seq:
        assert b == pytest.approx(a / 10, rel=1e-9, abs=1e-15)


def test_cosine_floor_is_per_group():
    seq = lr_sequence("cosine", lrs=(0.5, 0.05), min_lr_ratio=0.2)
    for k, (a, b) in enumerate(seq):
        assert a == pytest.approx(cosine_closed(k, T, 0.2))
        assert b == pytest.approx(cosine_closed(k, T, 0.2) / 10)


def test_strongly_convex_is_absolute():
    seq = lr_sequence("strongly_convex", lrs=(0.5, 3.0), mu=0.25)
    for k, (a, b) in enumerate(seq):
        assert a == pytest.approx((2 * k + 1) / (2 * 0.25 * (k + 1) ** 2))
        assert b == pytest.approx(a)


def test_wsd_shape():
    total = 100
    lrs = first_group(lr_sequence("wsd", total_steps=total, warmup_fraction=0.1, decay_fraction=0.3))
    warm, stable, decay = lrs[:10], lrs[10:70], lrs[70:]
    assert all(a < b for a, b in zip(warm, warm[1:])) and warm[-1] == pytest.approx(LR0)
    assert stable == pytest.approx([LR0] * 60)
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert decay[-1] == pytest.approx(LR0 / 30)  # linear: one step before reaching 0


def test_onecycle_endpoints_and_peak():
    total = 50
    lrs = first_group(lr_sequence("onecycle", total_steps=total, div_factor=10.0, final_div_factor=100.0))
    assert lrs[0] == pytest.approx(LR0 / 10)
    assert lrs[-1] == pytest.approx(LR0 / 10 / 100)
    assert max(lrs) == pytest.approx(LR0)
    assert lrs.index(max(lrs)) == round(0.3 * total - 1)


def test_cyclic_and_onecycle_work_with_optimizers_without_momentum():
    for opt_cls in (torch.optim.Adam, torch.optim.Adagrad, torch.optim.SGD):
        assert len(lr_sequence("cyclic", opt_cls=opt_cls)) == T
        assert len(lr_sequence("onecycle", opt_cls=opt_cls)) == T
    with pytest.raises(ValueError, match="cycle_momentum"):
        lr_sequence("cyclic", opt_cls=torch.optim.Adagrad, cycle_momentum=True)


def test_scheduler_state_dict_resumes_exactly():
    def build():
        p = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([p], lr=LR0)
        return opt, schedules.create("warmup_cosine", opt, 20, warmup_fraction=0.2)

    opt, sched = build()
    for _ in range(7):
        opt.step()
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    opt2, sched2 = build()
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    for _ in range(10):
        assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()


class _Wrapper(torch.optim.Optimizer):
    """A wrapper with its own param groups around a base optimizer (like a SAM that copies groups)."""

    def __init__(self, base: torch.optim.Optimizer):
        super().__init__([p for g in base.param_groups for p in g["params"]], {"lr": 123.0})
        self.base_optimizer = base

    def step(self, closure=None):
        return self.base_optimizer.step(closure)


def test_wrapper_schedule_drives_the_base_optimizer():
    p = torch.nn.Parameter(torch.zeros(2))
    base = torch.optim.SGD([p], lr=LR0)
    wrapper = _Wrapper(base)
    sched = schedules.create("linear", wrapper, 4)
    assert sched.optimizer is base
    assert wrapper.param_groups[0]["lr"] == 123.0 and base.param_groups[0]["lr"] == LR0


def test_shared_groups_wrapper_keeps_the_wrapper():
    from descentlab import optim

    model = torch.nn.Linear(3, 2)
    la = optim.create("lookahead", model, lr=0.1)
    assert la.param_groups is la.base_optimizer.param_groups
    assert schedules.create("cosine", la, 10).optimizer is la


@pytest.mark.parametrize(
    "name, total_steps, kw, match",
    [
        ("cosine", 0, {}, "total_steps"),
        ("cosine", 2.5, {}, "total_steps"),
        ("cosine", True, {}, "total_steps"),
        ("cosine", 10, {"warmup_fraction": 0.1}, "warmup_fraction"),
        ("warmup_cosine", 10, {"warmup_fraction": 1.5}, "warmup_fraction"),
        ("warmup_linear", 10, {"min_lr_ratio": -0.1}, "min_lr_ratio"),
        ("step", 10, {"step_size": 0}, "step_size"),
        ("step", 10, {"gamma": 2.0}, "gamma"),
        ("exponential", 10, {"gamma": 0.0}, "gamma"),
        ("wsd", 10, {"decay": "cubic"}, "cubic"),
        ("wsd", 10, {"warmup_fraction": 0.5, "decay_fraction": 0.6}, "decay_fraction"),
        ("strongly_convex", 10, {}, "mu"),
        ("strongly_convex", 10, {"mu": -1.0}, "mu"),
        ("onecycle", 10, {"pct_start": 1.2}, "pct_start"),
        ("onecycle", 1, {}, "total_steps"),
        ("cyclic", 10, {"mode": "sawtooth"}, "sawtooth"),
        ("cosin", 10, {}, "cosine"),
    ],
)
def test_bad_input_raises_naming_it(name, total_steps, kw, match):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match=match):
        schedules.create(name, opt, total_steps, **kw)


def test_not_an_optimizer():
    with pytest.raises(TypeError, match="Optimizer"):
        schedules.create("cosine", object(), 10)


def test_available_and_describe():
    names = schedules.available()
    assert {"constant", "cosine", "wsd", "onecycle", "strongly_convex", "inverse_sqrt"} <= set(names)
    assert set(schedules.describe()) == set(names)
    assert all(schedules.describe().values())
    assert schedules.keywords("wsd")["decay_fraction"] == 0.2
