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


def _sides(base, lawa_every=2, ema_every=3):
    """``base`` with a LAWA (k 3) and an EMA (decay 0.5) on its side; the base itself is returned."""
    sides = {"q": LAWA(base, k=3, every=lawa_every), "e": EMA(base, decay=0.5, every=ema_every)}
    optim.SideAverages(base, sides)
    return base


def test_side_averages_train_the_raw_weights_and_hold_each_average_by_hand():
    """w_t = t (the line); LAWA every 2 with k=3 after 9 steps averages (4, 6, 8); the EMA every 3 (decay 0.5) of
    snapshots 3, 6, 9 is 0.5 (0.5 3 + 0.5 6) + 0.5 9 = 6.75. The optimizer stepped is the base itself."""
    w, opt = _line(_sides, steps=9)
    assert type(opt) is torch.optim.SGD and float(w.detach()) == 9.0
    seen = {}
    for name, swapped, extra in opt.side_averages.side_evaluations():
        with swapped():
            seen[name] = float(w.detach())
        assert float(w.detach()) == 9.0  # swapped back
        assert extra["averaging_seconds"] >= 0.0
    assert seen == {"q": pytest.approx(6.0), "e": pytest.approx(6.75)}


def test_side_averages_are_the_standalone_wrappers_and_their_seconds_are_off_the_clock():
    """The same weights as LAWA or EMA wrapping the base alone (which step the base themselves); the snapshot
    seconds are returned once by untimed_seconds() and summed per side."""
    w, opt = _line(_sides, steps=7)
    sides = opt.side_averages
    for name, make in (("q", lambda b: LAWA(b, k=3, every=2)), ("e", lambda b: EMA(b, decay=0.5, every=3))):
        w_alone, alone = _line(make, steps=7)
        alone.eval()
        (swap,) = [s for n, s, _ in sides.side_evaluations() if n == name]
        with swap():
            assert torch.equal(w.detach(), w_alone.detach())
    spent = sides.untimed_seconds()
    assert spent > 0 and sides.untimed_seconds() == 0.0
    assert spent >= sum(sides.side_seconds.values()) > 0


def test_side_averages_state_dict_round_trip_and_refusals():
    w, opt = _line(_sides, steps=5)
    sd = opt.state_dict()
    assert set(sd["side_averages"]["sides"]) == {"q", "e"}
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = _sides(torch.optim.SGD([w2], lr=1.0))
    opt2.load_state_dict(sd)
    pairs = zip(opt.side_averages.side_evaluations(), opt2.side_averages.side_evaluations(), strict=True)
    for (n1, s1, _), (n2, s2, _) in pairs:
        assert n1 == n2
        with s1():
            a = w.detach().clone()
        with s2():
            assert torch.equal(w2.detach(), a)
    base3 = torch.optim.SGD([torch.nn.Parameter(w.detach().clone())], lr=1.0)
    optim.SideAverages(base3, {"q": LAWA(base3, k=3, every=2)})
    with pytest.raises(ValueError, match="side averages"):
        base3.load_state_dict(sd)
    base4 = torch.optim.SGD([w2], lr=1.0)
    with pytest.raises(ValueError, match="sides must be"):
        optim.SideAverages(base4, {})
    with pytest.raises(ValueError, match="wraps another optimizer"):
        optim.SideAverages(base4, {"q": LAWA(torch.optim.SGD([w], lr=1.0))})
    with pytest.raises(ValueError, match="already has side averages"):
        optim.SideAverages(opt2, {"q": LAWA(opt2)})
    with pytest.raises(ValueError, match="method must be one of"):
        optim.create("side_averages", [w2], lr=0.1, base="sgd", sides={"x": {"method": "swa"}})


def test_training_loop_evaluates_every_side_and_leaves_their_snapshots_off_the_clock(toy_task):
    """train(): the raw metrics are those of the base alone; `<metric>@<side>` those of the standalone wrapper."""
    kw = dict(steps=40, eval_every=10, store=False, progress=False, seed=1, lr=0.05)
    sides = {"q": {"method": "lawa", "k": 3, "every": 4}, "e": {"method": "ema", "decay": 0.8, "every": 2}}
    run = train(toy_task, optimizer="side_averages", hparams={"base": "adam", "sides": sides}, **kw)
    alone = train(toy_task, optimizer="adam", **kw)
    assert run.history["loss"] == alone.history["loss"]
    for name, cfg in sides.items():
        cfg = dict(cfg)
        wrapped = train(toy_task, optimizer=cfg.pop("method"), hparams={"base": "adam", **cfg}, **kw)
        assert [v for _, v in run.history[f"loss@{name}"]] == [v for _, v in wrapped.history["loss"]]
        assert len(run.history[f"averaging_seconds@{name}"]) == len(run.history["loss"])


def test_side_averages_cannot_train_as_a_population():
    from descentlab.train.population import population_mode

    with pytest.raises(ValueError, match="side_averages"):
        population_mode("side_averages")


def test_side_averages_resume_exactly_in_the_training_loop(store_path):
    sides = {"q": {"method": "lawa", "k": 3, "every": 3}, "e": {"method": "ema", "decay": 0.7, "every": 2}}
    common = dict(steps=40, eval_every=5, progress=False, lr=3e-2, optimizer="side_averages",
                  hparams={"base": "adam", "sides": sides}, task="logreg", task_kw={"m": 100, "n": 5},
                  batch_size=20)  # fmt: skip
    ref = train(store=False, **common)
    run = train(store=store_path, run_id="side", checkpoint_every=4,
                callbacks=[Callback(_InterruptAt(22), every=1)], **common)  # fmt: skip
    assert run.status == "interrupted"
    resumed = descentlab.resume("side", store=store_path, progress=False)
    assert resumed.status == "finished"
    stored = descentlab.load_run("side", store_path)
    for key in ("loss", "loss@q", "loss@e"):
        assert [v for _, v in stored.metrics(key)] == [v for _, v in ref.metrics(key)]
