"""LAWA and EMA evaluation wrappers: hand-computed averages, the eval/train swap, exact resume of their state."""

from __future__ import annotations

import pytest
import torch

import descentlab
from descentlab import optim
from descentlab.optim.averaging import EMA, LAWA
from descentlab.train import Callback, train


def _line(opt_factory, steps):
    """w starts at 0 with loss = -w (gradient -1): plain SGD with lr 1 puts w_t = t after t steps."""
    w = torch.nn.Parameter(torch.zeros(()))
    opt = opt_factory(torch.optim.SGD([w], lr=1.0))
    for _ in range(steps):
        opt.zero_grad()
        (-w).backward()
        opt.step()
    return w, opt


def test_lawa_evaluates_the_mean_of_the_last_k_snapshots():
    w, opt = _line(lambda b: LAWA(b, k=3, every=2), steps=9)
    # snapshots at steps 2, 4, 6, 8 -> queue (4, 6, 8); step 9 is not a snapshot
    assert float(w.detach()) == 9.0
    opt.eval()
    assert float(w.detach()) == pytest.approx((4 + 6 + 8) / 3)
    opt.eval()  # idempotent
    assert float(w.detach()) == pytest.approx(6.0)
    opt.train()
    assert float(w.detach()) == 9.0
    opt.train()
    assert float(w.detach()) == 9.0


def test_lawa_start_and_empty_queue():
    w, opt = _line(lambda b: LAWA(b, k=2, every=1, start=5), steps=4)
    opt.eval()
    assert float(w.detach()) == 4.0  # no snapshot yet: the raw weights are evaluated
    opt.train()
    for _ in range(3):  # steps 5, 6, 7 -> queue (6, 7)
        opt.zero_grad()
        (-w).backward()
        opt.step()
    opt.eval()
    assert float(w.detach()) == pytest.approx(6.5)
    opt.train()


def test_ema_against_hand_computation():
    w, opt = _line(lambda b: EMA(b, decay=0.5, every=2), steps=6)
    # snapshots 2, 4, 6: ema = 2, then 0.5*2 + 0.5*4 = 3, then 0.5*3 + 0.5*6 = 4.5
    opt.eval()
    assert float(w.detach()) == pytest.approx(4.5)
    opt.train()
    assert float(w.detach()) == 6.0


def test_step_in_eval_mode_is_refused():
    w, opt = _line(lambda b: LAWA(b, k=2, every=1), steps=2)
    opt.eval()
    with pytest.raises(RuntimeError, match="eval mode"):
        opt.step()
    opt.train()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"k": 0}, "k must be an integer >= 1, got 0"),
        ({"every": 1.5}, "every must be an integer >= 1, got 1.5"),
        ({"start": -1}, "start must be an integer >= 0, got -1"),
    ],
)
def test_bad_lawa_settings_name_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        LAWA(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), **kw)


def test_bad_ema_decay_names_the_value():
    with pytest.raises(ValueError, match="decay must be a number in \\[0, 1\\), got 1.0"):
        EMA(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), decay=1.0)


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _steps(model, opt, start, n):
    for t in range(start, start + n):
        g = torch.Generator().manual_seed(t)
        x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize(
    "name, kw",
    [("lawa", {"k": 3, "every": 2}), ("ema", {"decay": 0.8, "every": 3})],
)
def test_state_dict_resumes_exactly_into_a_new_model(name, kw):
    ref = _model()
    ref_opt = optim.create(name, ref, base="adamw", lr=1e-2, weight_decay=0.1, **kw)
    _steps(ref, ref_opt, 0, 13)

    first = _model()
    opt = optim.create(name, first, base="adamw", lr=1e-2, weight_decay=0.1, **kw)
    _steps(first, opt, 0, 7)
    saved_model, saved_opt = first.state_dict(), opt.state_dict()
    assert saved_opt["averaging"]["kind"] == name

    again = _model(seed=1)  # other initial weights: everything comes from the checkpoint
    opt2 = optim.create(name, again, base="adamw", lr=1e-2, weight_decay=0.1, **kw)
    again.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)
    _steps(again, opt2, 7, 6)
    for a, b in zip(ref.parameters(), again.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(ref_opt.averaged_params(), opt2.averaged_params()):
        assert torch.equal(a, b)


def test_load_state_dict_refuses_another_kind():
    m = _model()
    lawa = optim.create("lawa", m, base="sgd", lr=0.1, every=1)
    _steps(m, lawa, 0, 2)
    ema = optim.create("ema", _model(), base="sgd", lr=0.1)
    with pytest.raises(ValueError, match="holds a 'lawa' average, this optimizer keeps 'ema'"):
        ema.load_state_dict(lawa.state_dict())
    plain = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no 'averaging' entry"):
        lawa.load_state_dict(plain.state_dict())


class _InterruptAt:
    def __init__(self, at):
        self.at = at

    def __call__(self, ctx):
        if ctx.step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", ["lawa", "ema"])
def test_training_loop_evaluates_the_average_and_resumes_exactly(store_path, name):
    hp = {"base": "adam", "every": 3, **({"k": 3} if name == "lawa" else {"decay": 0.7})}
    task = {
        "task": "logreg",
        "task_kw": {"m": 100, "n": 5},
        "batch_size": 20,
    }  # a registry task: resume rebuilds it
    common = dict(steps=40, eval_every=5, progress=False, hparams=hp, lr=3e-2, **task)
    ref = train(optimizer=name, store=False, **common)
    raw = train(optimizer="adam", store=False, steps=40, eval_every=5, progress=False, lr=3e-2, **task)
    # the same raw trajectory (the wrapper steps the base optimizer), a different evaluated model
    for a, b in zip(ref.model.parameters(), raw.model.parameters()):
        assert torch.equal(a, b)
    assert ref.metrics("loss")[0] == raw.metrics("loss")[0]  # step 0: nothing averaged yet
    assert ref.metrics("loss")[1:] != raw.metrics("loss")[1:]

    run = train(optimizer=name, store=store_path, run_id="avg", checkpoint_every=4,
                callbacks=[Callback(_InterruptAt(22), every=1)], **common)  # fmt: skip
    assert run.status == "interrupted"
    resumed = descentlab.resume("avg", store=store_path, progress=False)
    assert resumed.status == "finished"
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    stored = descentlab.load_run("avg", store_path)
    assert [v for _, v in stored.metrics("loss")] == [v for _, v in ref.metrics("loss")]
