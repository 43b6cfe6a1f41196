"""Data-parallel training (``train(..., distributed=True)``) and DDP bench trials: gloo on CPU, 2 processes."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from descentlab.bench import get_algorithm, get_workload, make_spec, run_trial
from descentlab.bench.trial import run_distributed_trial
from descentlab.store import Store
from descentlab.train import train
from gloo_ranks import leave, spawn_ranks

WORLD = 2
# The tiny workload's task: logistic regression, 100 x 5; global batch 50 -> 25 examples per rank.
TRAIN_KW = dict(
    optimizer="sgd", lr=0.5, hparams={"momentum": 0.9}, schedule="warmup_cosine", task_kw={"m": 100, "n": 5},
    steps=24, batch_size=50, seed=3, eval_every=8, progress=False, device="cpu",
)  # fmt: skip
# SAM: its first backward is unsynchronized and first_step averages the gradient (docs/optimizers.md).
SAM_KW = {**TRAIN_KW, "optimizer": "sam", "hparams": {"rho": 0.1}, "steps": 8}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tiny_spec() -> dict:
    return make_spec(get_workload("tiny"), get_algorithm("sgd_nesterov"), {"lr": 0.3}, seed=0)


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        run = train("logreg", store=str(Path(out) / "store.db"), distributed=True, **TRAIN_KW)
        try:
            train("logreg", store=False, distributed=True, **{**TRAIN_KW, "batch_size": 51})
            bad = ""
        except ValueError as exc:
            bad = str(exc)
        sam = train("logreg", store=False, distributed=True, **SAM_KW)
        result = run_distributed_trial(_tiny_spec(), device="cpu")
        torch.save(
            {
                "weight": run.model.weight.detach().clone(),
                "sam_weight": sam.model.weight.detach().clone(),
                "status": run.status,
                "run_id": run.id,
                "batch_loss": run.history["batch_loss"],
                "train_time": run.final["train_time"],
                "evaluated": "gap" in run.history,
                "bad": bad,
                "result": None if result is None else json.dumps(result, default=str),
            },
            Path(out) / f"rank{rank}.pt",
        )
    except BaseException:
        dist.destroy_process_group()
        raise
    leave(rank)


@pytest.fixture(scope="module")
def ddp_out(tmp_path_factory):
    """Run the 2-process gloo workers once; yields the folder with their outputs."""
    out = tmp_path_factory.mktemp("ddp")
    spawn_ranks(_worker, (_free_port(), str(out)), seconds=300)
    return out


def _load(out: Path, rank: int) -> dict:
    return torch.load(out / f"rank{rank}.pt", weights_only=False)


def test_ddp_equals_single_process_with_the_same_global_batch(ddp_out):
    r0, r1 = _load(ddp_out, 0), _load(ddp_out, 1)
    assert r0["status"] == r1["status"] == "finished"
    assert torch.allclose(r0["weight"], r1["weight"], rtol=0, atol=0)  # identical on both ranks
    single = train("logreg", store=False, **TRAIN_KW)
    ref = single.model.weight.detach()
    assert torch.allclose(r0["weight"], ref, rtol=1e-5, atol=1e-6), (r0["weight"], ref)
    # the logged loss is the global batch's mean, the same on both ranks and as a single process
    assert r0["batch_loss"] == r1["batch_loss"]
    losses = [v for _, v in r0["batch_loss"]]
    ref_losses = [v for _, v in single.history["batch_loss"]]
    assert losses == pytest.approx(ref_losses, rel=1e-5, abs=1e-6)
    assert r0["train_time"] == r1["train_time"]  # one clock (the slowest rank's) on every rank


def test_ddp_sam_equals_single_process(ddp_out):
    r0, r1 = _load(ddp_out, 0), _load(ddp_out, 1)
    assert torch.equal(r0["sam_weight"], r1["sam_weight"])
    ref = train("logreg", store=False, **SAM_KW).model.weight.detach()
    assert torch.allclose(r0["sam_weight"], ref, rtol=1e-5, atol=1e-6), (r0["sam_weight"], ref)
    assert not torch.allclose(
        ref, train("logreg", store=False, **{**SAM_KW, "hparams": {"rho": 0.0}}).model.weight
    )


def test_rank0_alone_evaluates_and_writes_the_store(ddp_out):
    r0, r1 = _load(ddp_out, 0), _load(ddp_out, 1)
    assert r0["evaluated"] and not r1["evaluated"]
    assert r0["run_id"] == r1["run_id"]
    st = Store(ddp_out / "store.db")
    try:
        runs = st.list_runs()
        assert [r["id"] for r in runs] == [r0["run_id"]]
        run = st.load_run(r0["run_id"])
        assert run.status == "finished"
        assert run.config["distributed"] == {"world_size": WORLD, "backend": "gloo"}
        assert run.config["batch_size"] == 50  # the global batch
        assert [s for s, _ in run.history["gap"]] == [0, 8, 16, 24]
    finally:
        st.close()


def test_trial_result_is_produced_once_and_matches_a_single_process_trial(ddp_out):
    r0, r1 = _load(ddp_out, 0), _load(ddp_out, 1)
    assert r1["result"] is None
    res = json.loads(r0["result"])
    single = run_trial(_tiny_spec(), threads=1)
    assert res["status"] == single["status"] == "finished" and res["error"] == ""
    assert res["reached"] and single["reached"]
    assert res["config"]["distributed"]["world_size"] == WORLD
    # the same evaluations: the target is met at the same step, with the same gap (up to fp32 rounding)
    assert [s for s, _ in res["history"]["gap"]] == [s for s, _ in single["history"]["gap"]]
    assert [v for _, v in res["history"]["gap"]] == pytest.approx(
        [v for _, v in single["history"]["gap"]], rel=1e-3, abs=1e-6
    )
    assert math.isfinite(float(res["time_to_target"]))


def test_global_batch_not_divisible_by_world_size(ddp_out):
    for rank in range(WORLD):
        msg = _load(ddp_out, rank)["bad"]
        assert "batch_size 51" in msg and "world size 2" in msg


def test_distributed_needs_a_process_group():
    with pytest.raises(ValueError, match="process group"):
        train("logreg", store=False, distributed=True, **TRAIN_KW)
    with pytest.raises(ValueError, match="distributed must be True or False, got 'yes'"):
        train("logreg", store=False, distributed="yes", **TRAIN_KW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="torchrun"):
        run_distributed_trial(_tiny_spec(), device="cpu")


def test_bench_trial_command_single_process_and_bad_input(tmp_path):
    from typer.testing import CliRunner

    from descentlab.bench.cli import bench_app

    runner = CliRunner()
    common = ["-a", "sgd_nesterov", "-w", "tiny", "--store", str(tmp_path / "s.db"), "--scale", "1",
              "--device", "cpu", "--tuning", "external"]  # fmt: skip
    res = runner.invoke(bench_app, ["trial", *common, "--hparams", '{"lr": 0.3}', "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["world_size"] == 1 and summary["status"] == "finished" and summary["reached"]
    assert summary["key"] == _tiny_spec()["key"]  # the same trial (cache key) as `bench run` would plan
    bad = runner.invoke(bench_app, ["trial", *common])
    assert isinstance(bad.exception, ValueError) and "--hparams" in str(bad.exception)
    bad = runner.invoke(bench_app, ["trial", *common, "--hparams", "[1]"])
    assert isinstance(bad.exception, ValueError) and "'[1]'" in str(bad.exception)


@pytest.mark.slow  # torchrun's agent and two fresh interpreters: ~10-30 s on a shared 2-core machine
def test_torchrun_launch_writes_one_result(tmp_path):
    script = shutil.which("descentlab", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the descentlab console script is not installed")
    store = tmp_path / "s.db"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "--no-python", script, "bench", "trial", "-a", "sgd_nesterov", "-w", "tiny", "--store", str(store),
           "--scale", "1", "--device", "cpu", "--tuning", "external", "--hparams", '{"lr": 0.3}', "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    start = proc.stdout.index("{")
    summary = json.loads(proc.stdout[start : proc.stdout.rindex("}") + 1])
    assert proc.stdout.count('"run_id"') == 1  # rank 0 alone reports
    assert summary["world_size"] == WORLD and summary["status"] == "finished" and summary["reached"]
    one = _tiny_spec()["key"]
    assert summary["key"] != one  # a 2-process trial never answers for the one-process trial in the cache
    st = Store(store)
    try:
        assert len(st.list_runs()) == 1
        run = st.load_run(summary["run_id"])
        assert run.config["distributed"]["world_size"] == WORLD and run.final["reached"]
    finally:
        st.close()


def _crash_on_rank1(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    if rank == 1:  # this rank's training breaks before its first collective

        def broken(*a, **k):
            raise OSError("disk gone")

        sys.modules["descentlab.train"].train = broken  # (`descentlab.train` the attribute is the function)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        run_distributed_trial(_tiny_spec(), device="cpu")
    finally:
        dist.destroy_process_group()


def test_a_crash_on_one_rank_raises_there_with_its_cause():
    """Rank 1's crash ends its process with the cause (RuntimeError naming the rank), so the launcher sees a
    failed worker and stops the others (torchrun does; with NCCL a rank left waiting would sit in a collective until
    the timeout). Before, rank 1 returned a failed result and exited 0, and rank 0 reported gloo's lost connection
    (checked: with the raise removed this test fails with "DID NOT RAISE")."""
    with pytest.raises(mp.ProcessRaisedException, match="rank 1: OSError: disk gone"):
        spawn_ranks(_crash_on_rank1, (_free_port(),), seconds=120)
