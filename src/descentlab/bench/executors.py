"""Executors: run the same trial function sequentially, in spawned processes, or as Ray tasks.

Every executor is an iterator factory ``map(fn, items)`` that yields ``fn(item)`` results as they complete (order
not kept). Workers never touch the store: they return plain dicts and the driver writes them. Torch threads per
worker = ``cores // workers`` (at least 1), so two workers on two cores do not oversubscribe.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

EXECUTORS = ("local", "processes", "ray")


def usable_cores() -> int:
    """The CPUs this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """``max(1, cores // workers)`` with ``cores`` = the CPUs this process may use."""
    if cores is None:
        cores = usable_cores()
    return max(1, int(cores) // max(1, int(workers)))


class LocalExecutor:
    """Sequential, in this process (torch threads left as they are)."""

    name = "local"
    workers = 1

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(item)`` for each item, in order."""
        for item in items:
            yield fn(item)

    def close(self) -> None:
        """Nothing to release."""


def _init_worker(threads: int) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


class ProcessExecutor:
    """``workers`` spawned processes (``concurrent.futures`` with the ``spawn`` start method)."""

    name = "processes"

    def __init__(self, workers: int = 2):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.threads = threads_per_worker(workers)

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> Iterator[Any]:
        """Submit every item; yield results as they complete. On Ctrl-C (or when the consumer stops early) the
        pending items are cancelled and the running ones get SIGINT (SIGTERM when the driver got SIGTERM)."""
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads,),
        )
        try:
            futures = [pool.submit(fn, item) for item in items]
            for fut in as_completed(futures):
                yield fut.result()
        except (
            BaseException
        ) as exc:  # Ctrl-C / SIGTERM in the driver, or the consumer left: interrupt the running
            sig = getattr(exc, "signum", None) or signal.SIGINT  # items too, with the signal the driver got
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                if proc.is_alive() and proc.pid is not None:
                    os.kill(proc.pid, sig)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Pools are closed at the end of each ``map``."""


def _ray_call(fn: Callable[..., Any], threads: int, item: Any) -> Any:
    _init_worker(threads)
    return fn(item)


class RayExecutor:
    """Ray tasks (one CPU each). ``address=None`` starts a local Ray with ``workers`` CPUs; ``"auto"`` or
    ``"ray://host:port"`` joins a running cluster (then ``workers`` only sets the threads per task)."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        try:
            import ray
        except ImportError:
            raise ValueError(
                "executor 'ray' needs Ray: pip install 'descentlab[ray]' (or pip install ray)"
            ) from None
        self.workers = workers
        self.threads = threads_per_worker(workers) if address is None else 1
        self._started = False
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
            self._started = True

    def map(self, fn: Callable[..., Any], items: Iterable[Any]) -> Iterator[Any]:
        """Launch every item as a Ray task; yield results as they complete (pending tasks cancelled on exit)."""
        import ray

        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        pending = [remote.remote(fn, self.threads, item) for item in items]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Shut down the Ray runtime this executor started (a joined cluster is left running)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def make_executor(kind: str, workers: int = 2, ray_address: str | None = None) -> Any:
    """``local``, ``processes`` (``workers`` spawned processes) or ``ray`` (local Ray, or ``ray_address``)."""
    if kind == "local":
        return LocalExecutor()
    if kind == "processes":
        return ProcessExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers, ray_address)
    raise ValueError(f"unknown executor {kind!r} (available: {', '.join(EXECUTORS)})")
