"""Curve finding as a task: a low-loss curve between two fixed models, trained by ``train()`` / ``train_many()``.

Garipov et al. 2018 ("Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs") train the free control points
theta of a curve phi_theta(t) between two minima w_a, w_b by minimizing E_{t ~ U(0, 1)} L(phi_theta(t)); this file
casts that as a :class:`~descentlab.tasks.base.Task`, so that curves are ordinary runs of the one loop (store,
resume, populations):

- the model (:class:`CurveModel`) is the curve: the endpoints as buffers (``start``, ``end``, flat vectors), the free
  control points as its only parameter (``bends``, ``(n_points - 2, N)``, starting evenly spaced on the segment);
- a batch is ``(x, y, t)`` (:class:`CurveStream`): a mini-batch of the base task's training data (the same for every
  seed; optionally cycling through its first ``cycle`` batches, as ``landscape.connect`` cycles through its data)
  and ``t``, the k-th draw of U(0, 1) from a generator seeded with the run's seed (``landscape.connect``'s draws);
- the loss is the base task's loss of the point phi(t) plus ``weight_decay / 2 ||phi(t)||^2`` (the l2-regularized
  objective J the curve is trained on, as in ``landscape.connect``);
- ``evaluate`` reports the training loss and J along the curve at ``points`` evenly spaced t.

The run's seed picks its endpoints (``endpoints[seed]``), so curves with other endpoints are members of one
population that differ by seed. The endpoints' models must have no buffers (BatchNorm curves need the statistics
recomputed at each t: ``landscape.connect`` does that, this task refuses them).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from descentlab.landscape.connectivity import CURVES, Curve, _basis
from descentlab.landscape.projections import FlatParams
from descentlab.tasks.base import Batch, BatchStream, Task

__all__ = ["CurveModel", "CurveStream", "CurveTask", "curve_task"]


class CurveModel(nn.Module):
    """phi(t) = c_0(t) w_a + sum_i c_i(t) theta_i + c_last(t) w_b for t in [0, 1] (Bernstein polynomials for
    ``"bezier"``, hat functions for ``"polychain"``), with ``n_points`` control points in all; ``forward(x, t)`` is
    ``template`` evaluated at phi(t)."""

    def __init__(
        self, template: nn.Module, start: nn.Module, end: nn.Module, curve: str = "bezier", n_points: int = 3
    ):
        super().__init__()
        if curve not in CURVES:
            raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")
        if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 3:
            raise ValueError(
                f"n_points must be an integer >= 3 (control points incl. the endpoints), got {n_points!r}"
            )
        for what, m in (("template", template), ("start", start), ("end", end)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{what} must be an nn.Module, got {type(m).__name__}")
            if any(True for _ in m.buffers()):
                raise ValueError(
                    f"the {what} model has buffers (e.g. BatchNorm): use landscape.connect for it"
                )
        flat, fa, fb = FlatParams(template), FlatParams(start), FlatParams(end)
        for what, f in (("start", fa), ("end", fb)):
            if f.names != flat.names or f.shapes != flat.shapes:
                raise ValueError(
                    f"the {what} model's parameters differ from the template's (names and shapes)"
                )
        self.curve, self.n_points = curve, n_points
        self.seed: int | None = None  # the run's seed, set by the curve task's factory
        self.__dict__["template"] = copy.deepcopy(
            template
        )  # a plain attribute: its parameters are not the curve's
        self.__dict__["flat"] = flat
        wa, wb = fa.vector, fb.vector.to(fa.vector)
        self.register_buffer("start", wa.clone())
        self.register_buffer("end", wb.clone())
        frac = torch.linspace(0, 1, n_points, dtype=wa.dtype)[1:-1, None]
        self.bends = nn.Parameter((1 - frac) * wa + frac * wb)

    def coefficients(self, t: float | Tensor) -> Tensor:
        """The weights of the ``n_points`` control points at ``t`` (a scalar)."""
        return _basis(self.curve, self.n_points, torch.as_tensor(t, dtype=torch.float64))[0].to(self.start)

    def point(self, t: float | Tensor) -> Tensor:
        """The flat parameters phi(t)."""
        c = self.coefficients(t)
        return c[0] * self.start + c[-1] * self.end + c[1:-1] @ self.bends

    def control_points(self) -> Tensor:
        """``(n_points, N)``: w_a, the free points, w_b (detached)."""
        return torch.cat([self.start[None], self.bends.detach(), self.end[None]])

    def at(self, x: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """The template's output at phi(t) and phi(t) itself."""
        w = self.point(t)
        return functional_call(self.template, self.flat.to_dict(w), (x,), tie_weights=True), w

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        return self.at(x, t)[0]


class CurveStream(Iterator[Batch]):
    """Endless, resumable ``(x, y, t)`` batches: ``(x, y)`` from ``BatchStream(data, batch_size, data_seed)`` (cycling
    through its first ``cycle`` batches when ``cycle`` is set), ``t`` the k-th draw of U(0, 1) (float64) from a
    generator seeded with ``seed``. Its state is the step count (and the data stream's position)."""

    def __init__(
        self, data: Batch, batch_size: int, seed: int = 0, cycle: int | None = None, data_seed: int = 0
    ):
        if cycle is not None and (isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 1):
            raise ValueError(f"cycle must be a positive integer or None, got {cycle!r}")
        self.data = BatchStream(data, batch_size, data_seed)
        self.batch_size, self.seed, self.cycle, self.step = self.data.batch_size, int(seed), cycle, 0
        self.pool = [next(self.data)[:2] for _ in range(cycle)] if cycle else None
        self._gen = torch.Generator().manual_seed(self.seed)

    def __next__(self) -> Batch:
        x, y = self.pool[self.step % len(self.pool)] if self.pool else next(self.data)[:2]
        t = torch.rand((), generator=self._gen, dtype=torch.float64)
        self.step += 1
        return x, y, t

    def state_dict(self) -> dict[str, Any]:
        """Position of the stream: enough to resume it exactly."""
        return {
            "seed": self.seed,
            "step": self.step,
            "batch_size": self.batch_size,
            "data": self.data.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Move the stream to a saved position (the t generator is replayed to it)."""
        if int(state["batch_size"]) != self.batch_size:
            raise ValueError(
                f"checkpointed batch_size {state['batch_size']} differs from this stream's {self.batch_size}"
            )
        step = int(state["step"])
        if step < 0:
            raise ValueError(f"checkpointed step must be >= 0, got {step!r}")
        self.seed, self.step = int(state["seed"]), step
        self._gen = torch.Generator().manual_seed(self.seed)
        for _ in range(step):
            torch.rand((), generator=self._gen, dtype=torch.float64)
        if not self.pool:
            self.data.load_state_dict(dict(state["data"]))


@dataclass
class CurveTask(Task):
    """A curve between two fixed models of ``base`` as a task (see the module docstring); build it with
    :func:`curve_task`."""

    base: Task | None = None
    curve: str = "bezier"
    n_points: int = 3
    weight_decay: float = 0.0
    cycle: int | None = None
    data_seed: int = 0
    points: int = 21

    def batches(self, batch_size: int | None = None, seed: int = 0) -> CurveStream:
        """``(x, y, t)`` batches (:class:`CurveStream`)."""
        size = self.default_batch_size if batch_size is None else batch_size
        return CurveStream(self.train_data, size, seed, self.cycle, self.data_seed)

    def objective(self, outputs: Tensor, targets: Tensor, w: Tensor) -> Tensor:
        """J = the base task's loss + weight_decay / 2 ||w||^2."""
        assert self.base is not None
        loss = self.base.outputs_loss(outputs, targets)
        return loss + 0.5 * self.weight_decay * (w * w).sum() if self.weight_decay else loss

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """J at phi(t) on the mini-batch ``(x, y, t)``."""
        x, y, t = batch[0], batch[1], batch[2]
        out, w = model.at(x, t)
        return self.objective(out, y, w)

    def along(self, model: CurveModel, points: int | Sequence[float] | None = None) -> dict[str, np.ndarray]:
        """Training loss, J and error along the curve at ``points`` evenly spaced t (or these ts), whole training set."""
        assert self.base is not None
        data = tuple(self.train_data[:2])
        curve = Curve(model.template, self.base.outputs_loss, data, model.control_points(), model.curve)
        res = curve.loss_along(self.points if points is None else points)
        sq = (curve.weights(torch.as_tensor(res.alphas)).double() ** 2).sum(-1).numpy()
        err = 1 - res.accuracy if res.accuracy is not None else np.full(len(res.alphas), np.nan)
        return {"t": res.alphas, "loss": res.loss, "J": res.loss + 0.5 * self.weight_decay * sq, "error": err}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Along the curve (``points`` evenly spaced t, whole training set): mean training ``loss``, mean and max
        of J (``objective``, ``max_objective``) and the largest training error (``max_error``)."""
        r = self.along(model)  # type: ignore[arg-type]
        return {
            "loss": float(np.mean(r["loss"])),
            "objective": float(np.mean(r["J"])),
            "max_objective": float(np.max(r["J"])),
            "max_error": float(np.max(r["error"])),
        }


def curve_task(
    base: Task,
    endpoints: Mapping[int, tuple[nn.Module, nn.Module]],
    curve: str = "bezier",
    n_points: int = 3,
    weight_decay: float = 0.0,
    cycle: int | None = None,
    data_seed: int = 0,
    points: int = 21,
    sources: Mapping[int, Sequence[str]] | None = None,
) -> CurveTask:
    """The curve task between ``endpoints[seed] = (model_a, model_b)`` of ``base`` (a run with seed ``s`` trains the
    curve of ``endpoints[s]``). ``sources``: optional ``seed -> (run id of a, run id of b)``, recorded in the task's
    configuration (where the endpoints came from)."""
    if not isinstance(base, Task):
        raise TypeError(f"base must be a Task, got {type(base).__name__}")
    if not isinstance(endpoints, Mapping) or not endpoints:
        raise ValueError(
            f"endpoints must be a non-empty mapping seed -> (model_a, model_b), got {endpoints!r}"
        )
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    wd = float(weight_decay)
    if not wd >= 0 or not np.isfinite(wd):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    pairs = {}
    for s, pair in endpoints.items():
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"endpoints' keys must be integer seeds, got {s!r}")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"endpoints[{s}] must be a pair (model_a, model_b), got {pair!r}")
        pairs[s] = (pair[0], pair[1])
    template = copy.deepcopy(next(iter(pairs.values()))[0])
    CurveModel(
        template, *next(iter(pairs.values())), curve, n_points
    )  # refuse bad models now, not at the first run

    def factory(seed: int) -> CurveModel:
        if seed not in pairs:
            raise ValueError(f"the curve task has no endpoints for seed {seed}; it has {sorted(pairs)}")
        model = CurveModel(template, *pairs[seed], curve, n_points)
        model.seed = seed
        return model

    config = {
        "base": base.name,
        "base_kw": dict(base.config),
        "curve": curve,
        "n_points": n_points,
        "weight_decay": wd,
        "cycle": cycle,
        "data_seed": data_seed,
        "points": points,
        "seeds": sorted(pairs),
    }
    if sources is not None:
        config["sources"] = {str(s): list(v) for s, v in sources.items()}
    return CurveTask(
        name=f"{base.name}-{curve}-curve",
        train_data=tuple(base.train_data[:2]),
        val_data=tuple(base.val_data[:2]),
        model_factory=factory,
        description=f"a {curve} curve ({n_points} control points) between two {base.name} models",
        kind=base.kind,
        default_batch_size=base.default_batch_size,
        default_lr=0.1,
        default_steps=1000,
        default_eval_every=1000,
        config=config,
        base=base,
        curve=curve,
        n_points=n_points,
        weight_decay=wd,
        cycle=cycle,
        data_seed=data_seed,
        points=points,
    )
