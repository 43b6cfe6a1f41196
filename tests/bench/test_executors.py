"""A tiny end-to-end benchmark through each executor (local, spawned processes, a local Ray) gives the same trials."""

from __future__ import annotations

import pytest

from descentlab.bench import run_benchmark
from descentlab.bench.executors import make_executor, threads_per_worker

ALGS, WLS = ["sgd_nesterov", "adamw"], ["tiny"]


def _run(tmp_path, executor, **kw):
    res = run_benchmark(
        ALGS,
        WLS,
        trials=2,
        studies=1,
        executor=executor,
        workers=2,
        store=tmp_path / f"{executor}.db",
        progress=False,
        **kw,
    )
    assert res.executed == 4 and not res.missing()
    return res


@pytest.fixture(scope="module")
def local_result(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("local"), "local")


def _same_trials(a, b):
    assert set(a.results) == set(b.results)
    for key, ra in a.results.items():
        rb = b.results[key]
        assert rb["status"] == ra["status"] == "finished"
        assert rb["reached"] == ra["reached"]
        assert (
            rb["final"]["step"] == ra["final"]["step"]
        )  # same target hit at the same step (CPU determinism)
        assert rb["final"]["gap"] == pytest.approx(ra["final"]["gap"], rel=1e-5)


def test_processes(tmp_path, local_result):
    _same_trials(local_result, _run(tmp_path, "processes"))


@pytest.mark.slow  # starting Ray takes ~10-50 s on the shared 2-core machine
def test_ray(tmp_path, local_result):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'descentlab[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _same_trials(local_result, _run(tmp_path, "ray"))
    finally:
        ray.shutdown()


def test_threads_per_worker():
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(4, cores=2) == 1


def test_unknown_executor():
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ValueError, match="workers"):
        make_executor("processes", workers=0)
