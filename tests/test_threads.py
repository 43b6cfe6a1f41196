"""Issue 21: the "auto" thread rule is a function of the model size and the machine, and the caller's setting
is restored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab.threads import SMALL_FORWARD_FLOPS, choose_threads, forward_flops, torch_threads


def test_small_models_get_one_thread_whatever_the_machine():
    for cores, busy in ((2, 0.0), (2, 1.0), (64, 0.0)):
        choice = choose_threads("auto", flops=3e6, cores=cores, busy=busy, cap=cores)
        assert choice.threads == 1 and "small model" in choice.reason


def test_large_models_get_the_cores_not_busy_elsewhere_within_the_cap():
    big = 10 * SMALL_FORWARD_FLOPS
    assert choose_threads("auto", flops=big, cores=2, busy=0.0, cap=2).threads == 2
    assert choose_threads("auto", flops=big, cores=2, busy=1.0, cap=2).threads == 1  # one busy core
    assert choose_threads("auto", flops=big, cores=2, busy=7.5, cap=2).threads == 1
    assert choose_threads("auto", flops=big, cores=16, busy=3.2, cap=16).threads == 13
    assert choose_threads("auto", flops=big, cores=16, busy=0.0, cap=4).threads == 4  # a worker's cap holds
    assert (
        choose_threads("auto", flops=None, cores=8, busy=0.0, cap=8).threads == 8
    )  # unknown size: not small


def test_the_choice_is_deterministic_for_a_description():
    kw = {"flops": 2e8, "cores": 4, "busy": 1.4, "cap": 4}
    assert len({choose_threads("auto", **kw) for _ in range(5)}) == 1
    assert choose_threads("auto", **kw).as_config() == {
        "threads": 3,
        "threads_reason": choose_threads("auto", **kw).reason,
    }


def test_explicit_counts_and_bad_values():
    assert choose_threads(3).threads == 3 and choose_threads("2").threads == 2
    for bad in (0, -1, 1.5, True, "many", ""):
        with pytest.raises(ValueError, match="threads must be 'auto' or a positive integer"):
            choose_threads(bad)


def test_torch_threads_restores_the_callers_setting():
    before = torch.get_num_threads()
    with torch_threads(before + 1) as n:
        assert torch.get_num_threads() == n == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_forward_flops_counts_the_matmuls():
    model = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 10))
    assert forward_flops(model, torch.randn(8, 40)) == 2 * 8 * (40 * 100 + 100 * 10)

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("no")

    assert forward_flops(Broken(), torch.randn(2)) is None


def test_forward_flops_changes_nothing():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(16, 4)
    rng = torch.get_rng_state()
    assert forward_flops(model, x) == 2 * 16 * (4 * 8 + 8 * 2)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # running stats untouched


def test_train_runs_with_the_chosen_threads_records_them_and_restores_the_callers(toy_task, tmp_path):
    import descentlab
    from descentlab.cli import main

    seen = []
    with torch_threads(2):
        run = descentlab.train(toy_task, steps=4, eval_every=1, store=False, progress=False,
                               callbacks=[lambda ctx: seen.append(torch.get_num_threads())])  # fmt: skip
        assert torch.get_num_threads() == 2
    assert run.config["threads"] == 1 and "small model" in run.config["threads_reason"] and set(seen) == {1}
    with torch_threads(1):
        run = descentlab.train(toy_task, steps=2, store=False, progress=False, threads=2)
        assert torch.get_num_threads() == 1
    assert run.config["threads"] == 2 and run.config["threads_reason"] == "given"
    with pytest.raises(ValueError, match="threads must be 'auto' or a positive integer"):
        descentlab.train(toy_task, steps=2, store=str(tmp_path / "never"), progress=False, threads=0)
    assert not (tmp_path / "never").exists()
    store = tmp_path / "store"
    assert main(["train", "--task", "logreg", "--steps", "3", "--store", str(store), "--no-progress", "--threads", "1",
                 "--run-id", "t1"]) == 0  # fmt: skip
    assert descentlab.Store(store).load_run("t1").config["threads"] == 1
