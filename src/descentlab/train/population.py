"""Populations: ``train_many(task, optimizer, members, **shared) -> list[Run]`` trains M runs of one task as one
model with a leading member axis, through the same parts as ``train()``.

How a step runs. Every member's parameters live in one stacked leaf tensor per parameter (``[M, ...]``); the loss of
all members is one ``vmap(functional_call)`` of the task's own ``loss`` (each member on its own batch), and one
backward fills the stacked gradients. Each member keeps a module of its own whose parameters are *views* into the
stacked storage, so the task's ``evaluate``, the optimizers and the checkpoints see ordinary modules.

Optimizers, one implementation each (nothing is re-implemented here):

- ``stacked`` (torch's elementwise methods, and Lookahead / Grokfast / LAWA / EMA / Schedule-Free over them): one
  optimizer of the registry over the stacked tensors of a block of consecutive members with equal hyper-parameters.
  An elementwise update over a stacked tensor is the members' updates side by side, so this is exact; members with
  other hyper-parameters (a learning-rate grid) form other blocks.
- ``member`` (Muon, Shampoo, steepest descent under a global norm, Adafactor, the external methods, a callable): one
  optimizer per member, built by the registry over the member's own module exactly as ``train()`` builds it.
- ``sam`` (SAM, ASAM): one SAM per member; the population takes SAM's two gradient evaluations together
  (``first_step`` of every member, one more population forward and backward, ``second_step``), so each member's
  perturbation is normalised by its own gradient.
- refused: L-BFGS (its line search calls the closure a data-dependent number of times per member).

A member is the run ``train()`` would make with its seed and settings: the same initial model
(``task.make_model(seed)``), the same batch stream (``task.batches(batch_size, seed)``; members that share a seed
see the same batches), the same optimizer, schedule, evaluation cadence, divergence rule and metrics. The numbers
agree to rounding (a batched matrix product may round differently), not bit for bit. Randomness inside the forward
pass (dropout) is drawn per member from the population's generator (``vmap(randomness="different")``), so such a
member matches its ``train()`` run in distribution only. A member that diverges (or meets ``stop_when``) is frozen;
the others go on. ``train_time`` of a member is its share of the population's clock: each step's time divided by
the members still stepping.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from descentlab import optim as optim_registry
from descentlab import schedules as schedule_registry
from descentlab.store import Run, Store, new_run_id, validate_run_id
from descentlab.tasks.base import Task
from descentlab.threads import choose_threads, forward_flops, torch_threads
from descentlab.train.checkpoint import (
    _rng_state,
    _seed_everything,
    _set_rng_state,
    atomic_save,
    checkpoint_dir,
    load_checkpoint,
)
from descentlab.train.config import (
    OptimizerSpec,
    RunConfig,
    _check_positive,
    check_seed,
    configure,
    train_keywords,
)
from descentlab.train.hooks import Callback, StepContext, as_callbacks
from descentlab.train.interrupt import Interrupted, _DeferredInterrupt, signal_name
from descentlab.train.loop import DONE_STATUSES, _averaged, _call_mode, _finite_params
from descentlab.train.parallel import _diverged_key
from descentlab.train.progress import _escape_markup
from descentlab.train.recorder import Recorder

POPULATION_FORMAT = "descentlab-population-1"
POPULATION_CHECKPOINT = "population.pt"
FORWARDS = ("auto", "timed", "vmap", "sequential", "stacked")
VMAP_FLOPS = 2e6
"""forward="auto" batches a (non-MLP) model with vmap when one member's forward pass is at most this many FLOPs
(overhead-bound: logistic regression, the 2-D functions); above it, member after member (benchmarks/population.py:
mnist1d_cnn at 6.4 MFLOP, modular and charlm gain nothing from vmap on 2 CPU cores)."""
COMPACT = frozenset({"batch_loss"})
"""Metrics a member records at every step, stored as compact series chunks (one row per flush, not per value)."""
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Identity)

# torch.optim's elementwise methods (and descentlab's elementwise wrappers over them): one optimizer over stacked
# tensors is the members' optimizers side by side. Checked method by method in tests/test_population.py.
STACKED = frozenset(
    {"sgd", "adam", "adamw", "amsgrad", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "adamax",
     "schedulefree_adamw", "schedulefree_sgd", "sgdw"}
)  # fmt: skip
_WRAPPERS = {"lookahead": "adam", "grokfast": "adam", "lawa": "adamw", "ema": "adamw"}  # name -> default base
_SAM = frozenset({"sam", "asam"})
REFUSED = {
    "lbfgs": "L-BFGS's line search calls the closure a data-dependent number of times per member",
    "side_averages": "its side averages are evaluated by train()'s loop only (a population evaluates one set of "
    "weights per member)",
}
_MEMBER_KEYS = ("seed", "lr", "hparams", "run_id")


def population_mode(optimizer: OptimizerSpec, hparams: Mapping[str, Any] | None = None) -> str:
    """How optimizer ``optimizer`` runs in a population: "stacked", "member" or "sam" (see the module docstring);
    ValueError naming the method when it cannot run as one."""
    if not isinstance(optimizer, str):
        return "member"
    name = optimizer.lower()
    if name in REFUSED:
        raise ValueError(f"optimizer {name!r} cannot train as a population: {REFUSED[name]}")
    if name in _SAM:
        return "sam"
    if name in STACKED:
        return "stacked"
    if name in _WRAPPERS:
        base = (hparams or {}).get("base", _WRAPPERS[name])
        if not isinstance(base, str):
            return "member"
        inner = population_mode(base, {})
        if inner == "sam":
            raise ValueError(f"optimizer {name!r} over base {base!r} cannot train as a population")
        return inner
    return "member"


def describe_modes() -> dict[str, str]:
    """Registry name -> how it trains as a population ("stacked", "member", "sam" or "refused: why")."""
    out = {}
    for name in optim_registry.available():
        try:
            out[name] = population_mode(name)
        except ValueError:
            out[name] = "refused: " + REFUSED.get(name, "see descentlab.train.population")
    return out


def _parse_members(members: Any) -> list[dict[str, Any]]:
    """Each member as ``{"seed", "lr", "hparams", "run_id"}``; keys other than those are hyper-parameters."""
    if isinstance(members, (str, bytes, Mapping)) or not isinstance(members, Iterable):
        raise TypeError(
            f"members must be a sequence of per-member settings (dicts), got {type(members).__name__}"
        )
    out = []
    for i, m in enumerate(members):
        if not isinstance(m, Mapping):
            raise TypeError(f"member {i} must be a dict of settings (seed, lr, hyper-parameters), got {m!r}")
        seed = check_seed(m.get("seed", 0), f"member {i} seed")
        lr = m.get("lr")
        _check_positive(f"member {i} lr", lr)
        hp = m.get("hparams", {})
        if not isinstance(hp, Mapping):
            raise TypeError(f"member {i}: hparams must be a dict, got {hp!r}")
        hp = {**dict(hp), **{k: v for k, v in m.items() if k not in _MEMBER_KEYS}}
        for k, v in hp.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"member {i}: hyper-parameter {k} must be finite, got {v!r}")
        run_id = m.get("run_id")
        if run_id is not None:
            validate_run_id(run_id)
        out.append({"seed": seed, "lr": lr, "hparams": hp, "run_id": run_id})
    if not out:
        raise ValueError("members is empty: a population needs at least one member")
    ids = [m["run_id"] for m in out if m["run_id"] is not None]
    if len(set(ids)) != len(ids):
        raise ValueError(f"members' run ids must differ, got {ids}")
    return out


class _LossModule(nn.Module):
    """``forward(*batch) = task.loss(model, batch)``: the task's own loss, as one module for ``functional_call``."""

    def __init__(self, task: Task, model: nn.Module):
        super().__init__()
        self.model = model
        self.__dict__["task"] = task  # a plain attribute, not a submodule

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.task.loss(self.model, tuple(batch))


class _Block(nn.Module):
    """The stacked parameters of members ``lo:hi`` as leaf views (one stacked optimizer steps them)."""

    def __init__(self, stacked: Mapping[str, nn.Parameter], lo: int, hi: int):
        super().__init__()
        self.names = list(stacked)
        self.lo, self.hi = lo, hi
        for k, name in enumerate(self.names):
            t = stacked[name]
            self.register_parameter(f"p{k}", nn.Parameter(t.data[lo:hi], requires_grad=t.requires_grad))


@dataclasses.dataclass
class _Unit:
    """One optimizer (and schedule) of the population and the members it steps."""

    opt: torch.optim.Optimizer
    sched: Any
    members: list[int]
    stacked: bool
    params: list[tuple[nn.Parameter, str, Any]]  # (the optimizer's parameter, stacked name, index or slice)


@dataclasses.dataclass
class _Member:
    """Where one member stands: its run's recorder, config and model, whether it still steps, how it ended."""

    index: int
    config: RunConfig
    rec: Recorder
    model: nn.Module
    avg_model: Any = None
    alive: bool = True
    status: str = "running"
    note: str = ""
    last_eval: dict[str, float] = dataclasses.field(default_factory=dict)
    train_time: float = 0.0
    end_step: int | None = None
    claimed: bool = True  # this call writes the member (a member that had already ended is left as stored)


def _set_tensor(module: nn.Module, name: str, value: torch.Tensor, is_param: bool) -> None:
    owner, _, leaf = name.rpartition(".")
    mod = module.get_submodule(owner) if owner else module
    if is_param:
        mod._parameters[leaf] = value  # type: ignore[assignment]
    else:
        mod._buffers[leaf] = value


class Population:
    """M members of one task and one optimizer, built and stepped together (``train_many`` drives it)."""

    def __init__(
        self,
        task: Task,
        optimizer: OptimizerSpec,
        configs: list[RunConfig],
        recs: list[Recorder],
        forward: str = "auto",
    ):
        if forward not in FORWARDS:
            raise ValueError(f"forward must be one of {FORWARDS}, got {forward!r}")
        self.task, self.optimizer, self.configs, self.forward = task, optimizer, configs, forward
        base = configs[0]
        self.base = base
        self.mode = population_mode(optimizer, base.hparams)
        device = torch.device(base.device)
        task.to(device)
        models = []
        for cfg in configs:  # each member built as train() builds it
            _seed_everything(cfg.seed)
            models.append(task.make_model(cfg.seed).to(device))
        self._check_alike(models)
        skeleton = copy.deepcopy(models[0])
        prepare = getattr(skeleton, "prepare_population", None)
        if callable(prepare):
            prepare()  # e.g. a forward path without ops that vmap cannot batch
        self.lossmod = _LossModule(task, skeleton)
        self.param_names = [n for n, _ in models[0].named_parameters()]
        self.buffer_names = [n for n, _ in models[0].named_buffers()]
        self.stacked: dict[str, nn.Parameter] = {}
        for n, p in models[0].named_parameters():
            data = torch.stack([m.get_parameter(n).detach() for m in models])
            self.stacked[n] = nn.Parameter(data, requires_grad=p.requires_grad)
        self.buffers = {n: torch.stack([m.get_buffer(n) for m in models]) for n in self.buffer_names}
        for i, m in enumerate(models):  # the member's own module now reads and writes the stacked storage
            self._bind(m, i)
        self.members = [_Member(i, c, r, m) for i, (c, r, m) in enumerate(zip(configs, recs, models))]
        for mb in self.members:
            mb.avg_model = _averaged(mb.model, mb.config)
        self.units = self._build_units()
        self.streams: dict[int, Any] = {}
        for cfg in configs:
            if cfg.seed not in self.streams:
                self.streams[cfg.seed] = task.batches(cfg.batch_size, cfg.seed)
        self.step, self.frozen_values = 0, {}
        dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in skeleton.modules())
        self.randomness = "different" if dropout else "error"
        self._vm: Callable[..., torch.Tensor] | None = None
        self._vm_dim: Any = None
        self.named = [dict(mb.model.named_parameters()) for mb in self.members]
        self.mlp = _mlp_layers(skeleton, task)
        self.chosen: str | None = None  # forward="auto": the way kept after the trial steps
        self.trial: dict[str, float] = {}  # forward="auto": each way's timed trial step (seconds)
        if forward == "stacked" and self.mlp is None:
            raise ValueError(
                f"forward='stacked' needs a Sequential of Linear layers and elementwise activations under the "
                f"default classification/regression loss; task {task.name!r}'s model or loss is not one"
            )

    def ways(self) -> list[str]:
        """The forward ways ``forward="auto"`` tries: member after member, vmap, and the stacked MLP where it applies
        (a population of one member runs as ``train()`` does)."""
        if len(self.members) == 1:
            return ["sequential"]
        return ["sequential", "vmap", *(["stacked"] if self.mlp is not None else [])]

    def rule_forward(self) -> str:
        """``forward="auto"``: a rule on the model's structure, the same on every machine and every run (so a study's
        numbers reproduce): one member -> sequential (train() itself); a Sequential MLP under the default loss ->
        stacked; a model of at most ``VMAP_FLOPS`` per forward pass -> vmap; anything else -> sequential."""
        if len(self.members) == 1:
            return "sequential"
        if self.mlp is not None:
            return "stacked"
        model = self.members[0].model
        batch = next(self.task.batches(self.base.batch_size, self.members[0].config.seed))
        flops = forward_flops(model, batch[0]) if batch and isinstance(batch[0], torch.Tensor) else None
        if flops is None:
            flops = forward_flops(model)  # a model without inputs (the 2-D functions)
        return "vmap" if flops is not None and flops <= VMAP_FLOPS else "sequential"

    def way_for_step(self) -> str:
        """The forward way of the next step: ``forward`` itself, the structural rule for ``"auto"``, or for
        ``"timed"`` every way tried on the first steps, each twice (the first pass warms it up, the second is timed:
        real steps, no extra work), then the fastest kept; a way that fails (an op vmap cannot batch) is never
        chosen. ``"timed"`` is fastest on the machine at hand but its choice, and so the rounding of the members'
        numbers, can differ between runs."""
        if self.forward == "auto":
            if self.chosen is None:
                self.chosen = self.rule_forward()
            return self.chosen
        if self.forward != "timed":
            return self.forward
        if self.chosen is not None:
            return self.chosen
        ways = self.ways()
        k = self.step
        if k >= 2 * len(ways):
            timed = {w: t for w, t in self.trial.items() if math.isfinite(t)}
            self.chosen = min(timed, key=timed.__getitem__) if timed else "sequential"
            return self.chosen
        return ways[k % len(ways)]

    @staticmethod
    def _check_alike(models: list[nn.Module]) -> None:
        want = [(n, tuple(p.shape), p.dtype) for n, p in models[0].named_parameters()]
        for i, m in enumerate(models[1:], 1):
            got = [(n, tuple(p.shape), p.dtype) for n, p in m.named_parameters()]
            if got != want:
                raise ValueError(
                    f"member {i}'s model differs in its parameters from member 0's; cannot stack them"
                )

    def _bind(self, model: nn.Module, i: int) -> None:
        """Replace ``model``'s parameters and buffers by views of member ``i`` of the stacked storage; the aliases of
        one (tied) parameter stay one parameter."""
        views: dict[int, nn.Parameter] = {}
        for n, p in model.named_parameters():
            src = self.stacked[n]
            views[id(p)] = nn.Parameter(src.data[i], requires_grad=src.requires_grad)
        for name, p in list(model.named_parameters(remove_duplicate=False)):
            _set_tensor(model, name, views[id(p)], True)
        for name in self.buffer_names:
            _set_tensor(model, name, self.buffers[name][i], False)

    def _build_units(self) -> list[_Unit]:
        units: list[_Unit] = []
        if self.mode == "stacked":
            keys = [json.dumps([c.lr, c.hparams], sort_keys=True, default=repr) for c in self.configs]
            lo = 0
            for hi in range(1, len(keys) + 1):
                if hi == len(keys) or keys[hi] != keys[lo]:
                    block = _Block(self.stacked, lo, hi)
                    cfg = self.configs[lo]
                    opt = optim_registry.create(self.optimizer, block, lr=cfg.lr, **cfg.hparams)  # type: ignore[arg-type]
                    params = [(getattr(block, f"p{k}"), n, slice(lo, hi)) for k, n in enumerate(block.names)]
                    units.append(_Unit(opt, self._schedule(opt, cfg), list(range(lo, hi)), True, params))
                    lo = hi
            return units
        from descentlab.train.loop import _make_optimizer

        for mb in self.members:
            _seed_everything(mb.config.seed)
            opt = _make_optimizer(self.optimizer, mb.model, mb.config)
            named = dict(mb.model.named_parameters())
            params = [(named[n], n, mb.index) for n in self.param_names]
            units.append(_Unit(opt, self._schedule(opt, mb.config), [mb.index], False, params))
        return units

    def _schedule(self, opt: torch.optim.Optimizer, cfg: RunConfig) -> Any:
        if not cfg.schedule:
            return None
        return schedule_registry.create(cfg.schedule, opt, cfg.schedule_span, **cfg.schedule_kw)

    # --- the step -------------------------------------------------------------------------------------------------
    def _stack(
        self, drawn: dict[int, tuple[torch.Tensor, ...]], way: str
    ) -> tuple[tuple[torch.Tensor, ...], Any]:
        """The members' batches stacked on a leading axis (vmap in_dims 0), or the one batch all share (None)."""
        if way == "sequential":
            return (), None
        if len(drawn) == 1:
            return next(iter(drawn.values())), None
        per = [drawn[c.seed] for c in self.configs]
        return tuple(torch.stack([b[k] for b in per]) for k in range(len(per[0]))), 0

    def _zero_grads(self) -> None:
        for t in self.stacked.values():
            t.grad = None
        for named in self.named:
            for p in named.values():
                p.grad = None
        for u in self.units:
            for p, _, _ in u.params:
                p.grad = None

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.base.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.base.device).type, dtype=torch.bfloat16)

    def _grads(self, batch: tuple, bdim: Any, way: str, drawn: dict) -> torch.Tensor:
        """Forward and backward of every member (``way``: one vmap, or member after member as ``train()`` does);
        the gradients land where the optimizers read them. Returns the members' losses ``[M]`` (detached)."""
        self._zero_grads()
        if way == "sequential":
            losses = []
            for mb in self.members:
                if not mb.alive:
                    losses.append(math.nan)
                    continue
                with self._autocast():
                    loss = self.task.loss(mb.model, drawn[mb.config.seed])
                loss.backward()
                losses.append(float(loss.detach()))
            for u in self.units:  # stacked optimizers read the stacked gradient of their block
                if u.stacked:
                    for p, name, _ in u.params:
                        gs = [self.named[i][name].grad for i in u.members]
                        if all(g is None for g in gs):
                            continue
                        p.grad = torch.stack([g if g is not None else torch.zeros_like(self.named[i][name])
                                              for g, i in zip(gs, u.members)])  # fmt: skip
            return torch.tensor(losses)
        if way == "stacked":
            return self._backward(self._mlp_losses(batch, bdim))
        return self._losses(batch, bdim)

    def _mlp_losses(self, batch: tuple[torch.Tensor, ...], bdim: Any) -> torch.Tensor:
        """The members' losses ``[M]`` of a stacked ReLU-style MLP: one ``baddbmm`` per layer for all members."""
        assert self.mlp is not None
        h, y = batch[0], batch[1]
        m = len(self.members)
        with self._autocast():
            for kind, name in self.mlp:
                if kind == "act":
                    h = self.lossmod.model.get_submodule(name)(h)
                    continue
                w = self.stacked[f"{name}.weight"].transpose(1, 2)  # [M, in, out]
                b = self.stacked.get(f"{name}.bias")
                if h.dim() == 2:  # a batch all members share: [B, in] -> [M, B, out]
                    h = (
                        torch.matmul(h, w)
                        if b is None
                        else torch.baddbmm(b[:, None], h.expand(m, *h.shape), w)
                    )
                else:
                    h = torch.bmm(h, w) if b is None else torch.baddbmm(b[:, None], h, w)
            _, bsz, c = h.shape
            yy = y if y.dim() == 2 else y.expand(m, *y.shape)
            if self.task.kind == "regression":
                per = (h.squeeze(-1) - yy).pow(2).view(m, bsz)
            else:
                per = nn.functional.cross_entropy(h.reshape(m * bsz, c), yy.reshape(-1), reduction="none")
            return per.view(m, bsz).float().mean(1)

    def _backward(self, losses: torch.Tensor) -> torch.Tensor:
        """Backward of the live members' summed losses; the stacked gradients handed to the optimizers."""
        alive = torch.tensor([m.alive for m in self.members], device=losses.device)
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
        for unit in self.units:
            for p, name, idx in unit.params:
                g = self.stacked[name].grad
                p.grad = None if g is None else g[idx]
        return losses.detach().float()

    def _losses(self, batch: tuple[torch.Tensor, ...], bdim: Any) -> torch.Tensor:
        """One vmapped forward and backward of the whole population; the members' losses ``[M]`` (detached)."""
        if self._vm is None or self._vm_dim != bdim:

            def one(params: dict, buffers: dict, b: tuple) -> torch.Tensor:
                return torch.func.functional_call(self.lossmod, (params, buffers), b)

            self._vm = torch.func.vmap(one, in_dims=(0, 0, bdim), randomness=self.randomness)
            self._vm_dim = bdim
        params = {f"model.{n}": t for n, t in self.stacked.items()}
        buffers = {f"model.{n}": t for n, t in self.buffers.items()}
        with self._autocast():
            losses = self._vm(params, buffers, batch)
        return self._backward(losses)

    def step_once(self) -> list[float]:
        """One optimizer step of every member still stepping; the members' batch losses."""
        drawn = {seed: next(stream) for seed, stream in self.streams.items()}
        way = self.way_for_step()
        t0 = time.perf_counter()
        batch, bdim = self._stack(drawn, way)
        try:
            losses = self._grads(batch, bdim, way, drawn)
        except RuntimeError:
            if self.forward != "timed" or way == "sequential" or self.chosen is not None:
                raise
            # e.g. no batching rule for an op: never chosen; this step member by member
            self.trial[way] = math.inf
            way = "sequential"
            losses = self._grads((), None, way, drawn)
        if self.chosen is None and self.forward == "timed" and self.step >= len(self.ways()):
            self.trial[way] = min(self.trial.get(way, math.inf), time.perf_counter() - t0)
        live_units = [u for u in self.units if any(self.members[i].alive for i in u.members)]
        if self.mode == "sam":
            restore = self._perturb_stacked(live_units, way)
            if restore is None:  # member by member: SAM's own first step
                for u in live_units:
                    u.opt.first_step(zero_grad=True)  # type: ignore[attr-defined]
            try:
                self._grads(batch, bdim, way, drawn)
            except BaseException:
                if restore is not None:
                    restore()
                for u in live_units:
                    u.opt.unperturb()  # type: ignore[attr-defined]
                raise
            if restore is not None:
                restore()
            for u in live_units:
                u.opt.second_step()  # type: ignore[attr-defined]
        else:
            for u in live_units:
                try:
                    u.opt.step()
                except (RuntimeError, ValueError) as exc:
                    if "closure" in str(exc).lower():
                        raise ValueError(
                            f"optimizer {self.base.optimizer!r} needs a closure in step(); it cannot train as a "
                            "population"
                        ) from None
                    raise
        self._restore_frozen()
        for u in live_units:
            if u.sched is not None:
                u.sched.step()
        self.step += 1  # the gradients stay until the next step's forward clears them (as train()'s do)
        return losses.tolist()

    @torch.no_grad()
    def _perturb_stacked(self, live_units: list[_Unit], way: str) -> Callable[[], None] | None:
        """SAM's first step for every member at once, on the stacked parameters: eps_m = rho_m g_m / ||g_m||_2 (the
        norm over all of member m's parameters, as ``SAM.first_step`` computes it: the norm of the per-tensor norms),
        one add per stacked tensor. Returns the function that restores w, or None where the members' own SAM must
        step (another norm than p = 2, ASAM, several rhos in one member, torch.distributed, or member-by-member
        gradients)."""
        from descentlab.optim.sam import SAM

        if way == "sequential" or (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return None
        m = len(self.members)
        rho = [0.0] * m
        for u in live_units:
            if not isinstance(u.opt, SAM) or len(u.members) != 1:
                return None
            groups = u.opt.param_groups
            if (
                any(float(g["p"]) != 2.0 or g["adaptive"] for g in groups)
                or len({float(g["rho"]) for g in groups}) > 1
            ):
                return None
            rho[u.members[0]] = float(groups[0]["rho"])
        names = [n for n in self.param_names if self.stacked[n].grad is not None]
        if not names:
            return lambda: None
        grads = [self.stacked[n].grad for n in names]
        work = torch.promote_types(grads[0].dtype, torch.float32)
        per_tensor = torch.stack(
            [torch.linalg.vector_norm(g.reshape(m, -1), dim=1, dtype=work) for g in grads]
        )
        norm = torch.linalg.vector_norm(per_tensor, dim=0)  # [M]
        ok = torch.isfinite(norm) & (norm > 0)
        scale = torch.where(
            ok,
            torch.tensor(rho, dtype=work, device=norm.device) / torch.where(ok, norm, torch.ones_like(norm)),
            0.0,
        )
        saved = {n: self.stacked[n].data.clone() for n in names}
        for n, g in zip(names, grads):
            self.stacked[n].data.add_(g * scale.to(g.dtype).view(m, *([1] * (g.dim() - 1))))

        def restore() -> None:
            with torch.no_grad():
                for n, v in saved.items():
                    self.stacked[n].data.copy_(v)

        return restore

    def freeze(self, i: int) -> None:
        """Member ``i`` stops stepping: its parameters are kept as they are now."""
        self.members[i].alive = False
        self.frozen_values[i] = {n: t.data[i].clone() for n, t in self.stacked.items()}

    @torch.no_grad()
    def _restore_frozen(self) -> None:
        if self.mode != "stacked":
            return  # per-member optimizers of frozen members are not stepped
        for i, saved in self.frozen_values.items():
            for n, v in saved.items():
                self.stacked[n].data[i].copy_(v)

    # --- the resume state -----------------------------------------------------------------------------------------
    def state(self, pop_id: str) -> dict[str, Any]:
        """The population's full resume state (format ``descentlab-population-1``)."""
        return {
            "format": POPULATION_FORMAT,
            "population": pop_id,
            "members": [m.rec.run_id for m in self.members],
            "created": [m.rec.created for m in self.members],
            "optimizer_classes": [type(u.opt).__qualname__ for u in self.units],
            "params": {n: t.detach().clone() for n, t in self.stacked.items()},
            "buffers": {n: t.clone() for n, t in self.buffers.items()},
            "units": [u.opt.state_dict() for u in self.units],
            "schedules": [u.sched.state_dict() if u.sched is not None else None for u in self.units],
            "averaged": [m.avg_model.state_dict() if m.avg_model is not None else None for m in self.members],
            "streams": {seed: s.state_dict() for seed, s in self.streams.items()},
            "frozen": {i: v for i, v in self.frozen_values.items()},
            "member_state": [
                {
                    "alive": m.alive,
                    "status": m.status,
                    "note": m.note,
                    "last_eval": dict(m.last_eval),
                    "train_time": m.train_time,
                    "end_step": m.end_step,
                }
                for m in self.members
            ],  # fmt: skip
            "step": self.step,
            "forward": {"chosen": self.chosen, "trial": dict(self.trial)},
            "rng": _rng_state(),
        }

    def load(self, ck: Any, pop_id: str, source: str) -> None:
        """Load a population checkpoint into this freshly built population (ValueError naming what does not fit)."""
        if not isinstance(ck, dict) or ck.get("format") != POPULATION_FORMAT:
            got = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
            raise ValueError(
                f"{source} is not a population checkpoint (format {got!r}, want {POPULATION_FORMAT!r})"
            )
        if ck.get("population") != pop_id or ck.get("members") != [m.rec.run_id for m in self.members]:
            raise ValueError(f"{source} belongs to another population than {pop_id!r}")
        if ck.get("created") != [m.rec.created for m in self.members]:
            raise ValueError(f"{source} was written for earlier runs under these ids")
        if ck.get("optimizer_classes") != [type(u.opt).__qualname__ for u in self.units]:
            raise ValueError(f"{source} holds the state of other optimizers ({ck.get('optimizer_classes')})")
        step = ck.get("step")
        steps = self.base.steps
        if not isinstance(step, int) or step < 0 or (steps is not None and step > steps):
            raise ValueError(f"{source} is at step {step!r}, outside 0..{steps}")
        try:
            with torch.no_grad():
                for n, t in self.stacked.items():
                    v = ck["params"][n]
                    if v.shape != t.shape or v.dtype != t.dtype:
                        raise ValueError(
                            f"parameter {n} is {tuple(v.shape)} {v.dtype}, want {tuple(t.shape)}"
                        )
                    t.data.copy_(v)
                for n, t in self.buffers.items():
                    t.copy_(ck["buffers"][n])
            for u, s in zip(self.units, ck["units"], strict=True):
                _check_optimizer_state(u.opt, s, source)
                u.opt.load_state_dict(s)
            for u, s in zip(self.units, ck["schedules"], strict=True):
                if u.sched is not None and s is not None:
                    u.sched.load_state_dict(s)
            for m, s in zip(self.members, ck["averaged"], strict=True):
                if m.avg_model is not None and s is not None:
                    m.avg_model.load_state_dict(s)
            for seed, s in ck["streams"].items():
                self.streams[int(seed)].load_state_dict(s)
            for m, s in zip(self.members, ck["member_state"], strict=True):
                m.alive, m.status, m.note = bool(s["alive"]), str(s["status"]), str(s["note"])
                m.last_eval = {str(k): float(v) for k, v in s["last_eval"].items()}
                m.train_time, m.end_step = float(s["train_time"]), s["end_step"]
            self.frozen_values = {int(i): v for i, v in ck["frozen"].items()}
            fw = ck.get("forward") or {}
            self.chosen = fw.get("chosen") if fw.get("chosen") in FORWARDS else None
            self.trial = {str(k): float(v) for k, v in (fw.get("trial") or {}).items()}
            _set_rng_state(ck["rng"])
        except (RuntimeError, KeyError, TypeError, IndexError, AttributeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ValueError(f"{source} does not fit the population: {type(exc).__name__}: {first}") from None
        self.step = step


def _mlp_layers(model: nn.Module, task: Task) -> list[tuple[str, str]] | None:
    """``[("linear" | "act", submodule name)]`` when ``model`` is a Sequential of Linear layers and elementwise
    activations and ``task`` keeps the default loss (``outputs_loss(model(x), y)``, classification or regression);
    None otherwise (the population then uses vmap or member after member)."""
    if not isinstance(model, nn.Sequential) or type(task).loss is not Task.loss:
        return None
    if task.kind not in ("classification", "regression") or any(True for _ in model.buffers()):
        return None
    layers: list[tuple[str, str]] = []
    for name, mod in model.named_children():
        if isinstance(mod, nn.Linear):
            layers.append(("linear", name))
        elif isinstance(mod, _ELEMENTWISE):
            layers.append(("act", name))
        else:
            return None
    return layers if layers and layers[-1][0] == "linear" else None


def _check_optimizer_state(opt: torch.optim.Optimizer, saved: Any, source: str) -> None:
    """Every saved state tensor must have the shape and dtype the optimizer's parameter would give it (torch's fused
    kernels read and write past a tensor of the wrong size)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        raise ValueError(f"{source}: an optimizer state is not a state dict")
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, st in saved["state"].items():
        if not isinstance(key, int) or not 0 <= key < len(params) or not isinstance(st, dict):
            continue  # wrappers keep extra entries; torch's own load refuses what does not fit
        p = params[key]
        for name, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                raise ValueError(f"{source}: optimizer state {name!r} of parameter {key} has shape "
                                 f"{tuple(v.shape)}, want {tuple(p.shape)}")  # fmt: skip
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.dtype != p.dtype:
                raise ValueError(
                    f"{source}: optimizer state {name!r} of parameter {key} is {v.dtype}, want {p.dtype}"
                )


class _PopulationLoop:
    """One call of ``train_many`` once everything is built: step, record, evaluate, freeze, checkpoint, stop."""

    def __init__(self, pop: Population, pop_id: str, intr: _DeferredInterrupt, callbacks: list[Callback],
                 stop_when: Callable[[Mapping[str, float]], bool] | None, save_final: bool):  # fmt: skip
        self.pop, self.pop_id, self.intr, self.callbacks = pop, pop_id, intr, callbacks
        self.stop_when, self.save_final = stop_when, save_final
        self.cfg = pop.base
        self.avg_start = int(self.cfg.averaging_kw.get("start", 0))
        self.mid_step = False
        self.wall0 = time.perf_counter()

    @property
    def live(self) -> list[_Member]:
        return [m for m in self.pop.members if m.alive]

    def end(self, m: _Member, status: str, note: str) -> None:
        m.status, m.note, m.end_step = status, note, self.pop.step
        if status == "diverged":
            m.rec.record(self.pop.step, "diverged_step", self.pop.step)
        self.pop.freeze(m.index)

    def loop(self, bar: Any) -> None:
        pop, cfg = self.pop, self.cfg
        if pop.step == 0:
            self.evaluate(self.live)
        while self.live:
            if self.intr.pending:  # a signal arrived: stop here, where the state is whole
                raise Interrupted(self.intr.signum or 2)
            if cfg.budget_spent(pop.step, self.live[0].train_time):
                return
            self.mid_step = True
            live = self.live
            t0 = time.perf_counter()
            losses = pop.step_once()
            share = (time.perf_counter() - t0) / len(live)
            for m in live:
                m.train_time += share
                if m.avg_model is not None and pop.step > self.avg_start:
                    m.avg_model.update_parameters(m.model)
            self.mid_step = False
            for m in live:
                m.rec.record(pop.step, "batch_loss", losses[m.index])
                if not math.isfinite(losses[m.index]):
                    self.end(m, "diverged", f"loss became {losses[m.index]} at step {pop.step}")
            live = self.live
            bar.advance(pop.step, sum(losses[m.index] for m in live) / max(1, len(live)))
            if live and (pop.step % cfg.eval_every == 0 or cfg.budget_spent(pop.step, live[0].train_time)):
                self.evaluate(live)
            self.call_back()
            if cfg.checkpoint_every and pop.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()

    def evaluate(self, members: list[_Member]) -> None:
        """Evaluate ``members`` as train() does (Schedule-Free style optimizers in eval mode meanwhile); freeze those
        that diverged or met ``stop_when``."""
        pop, step = self.pop, self.pop.step
        for m in members:
            if step > 0 and not _finite_params(m.model):
                self.end(m, "diverged", f"parameters became non-finite at step {step}")
        members = [m for m in members if m.alive]
        for u in pop.units:
            _call_mode(u.opt, "eval")
        try:
            for m in members:
                res = dict(pop.task.evaluate(m.model))
                if m.avg_model is not None and step > self.avg_start:
                    res.update({f"avg_{k}": v for k, v in pop.task.evaluate(m.avg_model.module).items()})
                for k, v in res.items():
                    m.rec.record(step, k, v)
                m.rec.record(step, "train_time", m.train_time)
                m.rec.record(step, "wall_time", time.perf_counter() - self.wall0)
                m.rec.record(step, "lr", self.unit_of(m).opt.param_groups[0]["lr"])
                m.last_eval = res
        finally:
            for u in pop.units:
                _call_mode(u.opt, "train")
        for m in members:
            bad = _diverged_key(m.last_eval)
            if bad is not None:
                self.end(m, "diverged", f"evaluation {bad} became {m.last_eval[bad]} at step {step}")
            elif self.stop_when is not None and bool(self.stop_when(m.last_eval)):
                self.end(m, "finished", f"stopped at step {step}: stop_when was met")
            m.rec.flush()

    def unit_of(self, m: _Member) -> _Unit:
        return next(u for u in self.pop.units if m.index in u.members)

    def call_back(self) -> None:
        step = self.pop.step
        for cb in self.callbacks:
            if step % cb.every:
                continue
            for m in self.live:
                ctx = StepContext(step, m.model, self.unit_of(m).opt, self.pop.task)
                out = cb.fn(ctx)
                for k, v in {**ctx.metrics, **dict(out or {})}.items():
                    m.rec.record(step, k, v)

    @property
    def folder(self) -> Any:
        rec = self.pop.members[0].rec
        return rec.checkpoints

    def save_checkpoint(self) -> None:
        if self.folder is None:
            return
        for m in self.pop.members:
            m.rec.flush()
        atomic_save(self.pop.state(self.pop_id), self.folder / POPULATION_CHECKPOINT)

    def run(self, progress: bool) -> None:
        pop = self.pop
        for m in pop.members:
            m.model.train()
        for u in pop.units:
            _call_mode(u.opt, "train")
        description = _escape_markup(f"{pop.task.name} · {self.cfg.optimizer} × {len(pop.members)}")
        bar = sys.modules[__package__]._progress(
            progress, total=self.cfg.steps, description=description, completed=pop.step
        )
        try:
            with bar:
                self.loop(bar)
            for m in self.live:
                m.status, m.note, m.end_step = "finished", "", pop.step
        except KeyboardInterrupt:
            self.intr.hold = True
            if self.mid_step:
                by = signal_name(self.intr.signum)
                note = (f"interrupted ({by}) inside step {pop.step + 1} (a second signal), not checkpointed there; "
                        f"`descentlab resume {pop.members[0].rec.run_id}` continues the population from the last "
                        "checkpoint")  # fmt: skip
            else:
                self.save_checkpoint()
                note = (f"interrupted ({signal_name(self.intr.signum)}) at step {pop.step}; `descentlab resume "
                        f"{pop.members[0].rec.run_id}` "
                        "continues the population")  # fmt: skip
            for m in self.live:
                m.status, m.note = "interrupted", note
        except Exception as exc:
            self.intr.__exit__()
            for m in pop.members:
                if m.claimed:
                    m.rec.fail(exc, pop.step)
            raise
        self.write_down()

    def write_down(self) -> None:
        self.intr.hold = True
        pop = self.pop
        for m in pop.members:
            if not m.claimed:
                continue
            final = {k: v for k, v in m.last_eval.items() if isinstance(v, (int, float))}
            end = m.end_step if m.end_step is not None else pop.step
            final.update(
                {"step": end, "train_time": m.train_time, "wall_time": time.perf_counter() - self.wall0}
            )
            if m.status == "diverged":
                final["diverged_step"] = end
            folder = m.rec.checkpoints
            if m.status in DONE_STATUSES and folder is not None and self.save_final:
                atomic_save({"format": "descentlab-model-1", "config": _record(m.config, self.pop_id, m.index,
                             len(pop.members)), "model": m.model.state_dict()}, folder / "final.pt")  # fmt: skip
            m.rec.finish(m.status, final, m.note)
            m.final = final  # type: ignore[attr-defined]


def _record(config: RunConfig, pop_id: str, index: int, size: int) -> dict[str, Any]:
    rec = config.record()
    rec["population"] = {"id": pop_id, "member": index, "size": size}
    return rec


def train_many(
    task: str | Task,
    optimizer: OptimizerSpec = "adam",
    members: Sequence[Mapping[str, Any]] = ({"seed": 0},),
    *,
    hparams: Mapping[str, Any] | None = None,
    schedule: str | None = None,
    schedule_kw: Mapping[str, Any] | None = None,
    steps: int | None = None,
    time_budget: float | None = None,
    batch_size: int | None = None,
    eval_every: int | None = None,
    device: str | torch.device = "auto",
    store: Store | str | os.PathLike[str] | bool | None = None,
    population_id: str | None = None,
    callbacks: Iterable[Callback | Callable[[StepContext], Any]] = (),
    task_kw: Mapping[str, Any] | None = None,
    checkpoint_every: int | None = None,
    averaging: str | None = None,
    averaging_kw: Mapping[str, Any] | None = None,
    progress: bool = True,
    keep_model: bool = True,
    stop_when: Callable[[Mapping[str, float]], bool] | None = None,
    schedule_steps: int | None = None,
    overwrite: bool = False,
    threads: int | str = "auto",
    precision: str = "fp32",
    save_final: bool = True,
    forward: str = "auto",
    _resume_from: dict[str, Any] | None = None,
) -> list[Run]:
    """Train ``len(members)`` runs of ``task`` with ``optimizer`` as one population; return their Runs in order.

    ``members``: one dict per member with its ``seed`` (default 0), ``lr`` (default: the shared ``hparams``' or the
    task's), an optional ``run_id`` and any of the optimizer's hyper-parameters (or ``hparams={...}``), which override
    the shared ``hparams``. Every other argument is shared and means what it means for ``train()``. Each member is the
    run ``train()`` would make with its settings (see the module docstring for how each kind of optimizer runs, and
    :func:`population_mode`); its run lands in the store under ``<population_id>-<i>`` (or its own ``run_id``) with
    ``config["population"] = {"id", "member", "size"}``. One checkpoint holds the whole population (in member 0's
    checkpoint folder); ``descentlab.resume(<any member id>)`` continues all of them exactly; Ctrl-C stops every
    member at the same step boundary. ``save_final=False`` keeps no ``final.pt`` (for studies that need none).
    ``forward``: "vmap" (one batched forward and backward), "stacked" (a Sequential MLP under the default loss: one
    ``baddbmm`` per layer for all members), "sequential" (member after member, bit-identical gradients to
    ``train()``: for compute-bound models, and for matrix methods whose roots amplify rounding), "auto" (default: a
    rule on the model's structure, see :meth:`Population.rule_forward`; the same choice on every run) or "timed"
    (every way tried on the first real steps, the fastest kept). The way used is ``run.config["population"]
    ["forward_used"]``.
    """
    choose_threads(threads, flops=0.0)
    parsed = _parse_members(members)
    if population_id is not None:
        validate_run_id(population_id)
    base_hp = dict(hparams or {})
    config, task_obj, ex, _ = configure(
        task, optimizer, lr=parsed[0]["lr"], hparams={**base_hp, **parsed[0]["hparams"]}, schedule=schedule,
        schedule_kw=schedule_kw, steps=steps, time_budget=time_budget, batch_size=batch_size, seed=parsed[0]["seed"],
        eval_every=eval_every, device=device, task_kw=task_kw, checkpoint_every=checkpoint_every, averaging=averaging,
        averaging_kw=averaging_kw, schedule_steps=schedule_steps, distributed=False, run_id=None, overwrite=overwrite,
        store=store, precision=precision,
    )  # fmt: skip
    if averaging_kw and "start" in averaging_kw:
        start = averaging_kw["start"]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"averaging_kw start must be a non-negative integer, got {start!r}")
    pop_id = population_id or new_run_id(f"{task_obj.name}-pop")
    configs = []
    for m in parsed:
        hp = {**base_hp, **m["hparams"]}
        lr = m["lr"]
        if lr is None and isinstance(optimizer, str):
            lr = hp.pop("lr", None)
            _check_positive("lr", lr)
            if lr is None:
                lr = task_obj.default_lr
        configs.append(dataclasses.replace(config, seed=m["seed"], lr=lr, hparams=hp))
    ids = [m["run_id"] or f"{pop_id}-{i}" for i, m in enumerate(parsed)]
    for rid in ids:
        validate_run_id(rid)
    mode = population_mode(optimizer, config.hparams)
    resuming, cbs = _resume_from is not None, as_callbacks(callbacks, config.eval_every)
    shared_store = store
    own_store = None
    if store is not False and not isinstance(store, Store):
        own_store = Store(None if store in (None, True) else store)
        shared_store = own_store
    try:
        recs = [Recorder(shared_store, rid, compact=COMPACT) for rid in ids]
        for r in recs:
            r.check(resuming, overwrite)
        pop = Population(task_obj, optimizer, configs, recs, forward)
        flops = None
        data = task_obj.train_data
        if threads == "auto" and isinstance(data, tuple) and data and isinstance(data[0], torch.Tensor):
            one = forward_flops(pop.members[0].model, data[0][: config.batch_size].to(config.device))
            flops = None if one is None else len(parsed) * one  # None: a model the counter cannot run
        choice = choose_threads(threads, flops=flops)
        for mb in pop.members:
            mb.config = dataclasses.replace(mb.config, threads=choice.threads, threads_reason=choice.reason)
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch_threads(choice.threads))
            if resuming:
                folder = recs[0].checkpoints
                pop.load(_resume_from, pop_id, f"the checkpoint of population {pop_id!r} in {folder}")
                ended = _resume_from.get("_ended", set())
                for mb in pop.members:
                    mb.claimed = mb.rec.run_id not in ended
            intr = stack.enter_context(ex.interrupts())
            intr.stop()  # the study or tour around this call is stopping: no population starts
            for mb in pop.members:
                if not mb.claimed:
                    continue
                record = _record(mb.config, pop_id, mb.index, len(pop.members))
                record["population"].update(mode=mode, forward=forward)
                updated = (_resume_from or {}).get("_updated", {}).get(mb.rec.run_id)
                mb.rec.begin(record, overwrite, pop.step if resuming else None, updated)
            loop = _PopulationLoop(pop, pop_id, intr, cbs, stop_when, save_final)
            loop.run(progress)
        if intr.pending and not any(m.status == "interrupted" for m in pop.members):
            # a signal came while the members were written down: stored, then stop
            raise Interrupted(intr.signum or 2)
        runs = []
        for mb in pop.members:
            record = _record(mb.config, pop_id, mb.index, len(pop.members))
            record["population"].update(
                mode=mode, forward=forward, forward_used=pop.chosen or pop.way_for_step()
            )
            final = getattr(mb, "final", None)
            if final is None and recs[0].store is not None:
                stored = recs[0].store.load_run(mb.rec.run_id)
                final, status, note = stored.final, stored.status, stored.note
            else:
                final, status, note = final or {}, mb.status, mb.note
            run = Run(
                id=mb.rec.run_id, config=record, status=status, final=final, history=mb.rec.history, note=note
            )
            run.signal = intr.signum if status == "interrupted" else None  # type: ignore[attr-defined]
            if keep_model:
                run.model = _detached(mb.model)  # type: ignore[attr-defined]
                run.averaged_model = mb.avg_model.module if mb.avg_model is not None else None  # type: ignore[attr-defined]
            runs.append(run)
        return runs
    finally:
        if own_store is not None:
            own_store.close()


def _detached(model: nn.Module) -> nn.Module:
    """The member's module with its own copies of the parameters (no longer views of the population's storage)."""
    with torch.no_grad():
        for name, p in list(model.named_parameters()):
            _set_tensor(model, name, nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad), True)
        for name, b in list(model.named_buffers()):
            _set_tensor(model, name, b.clone(), False)
    return model


def resume_many(
    run_id: str,
    store: Store | str | os.PathLike[str] | None = None,
    progress: bool = True,
    task: Task | None = None,
) -> list[Run]:
    """Continue the population that run ``run_id`` belongs to from its last checkpoint; returns every member's Run.

    Members that had already ended are left as stored; the others continue exactly where an uninterrupted population
    would be. The checkpoint is validated and loaded before the store is touched. ``task``: the Task object to use for
    a population of a task that is not in the registry (a study's own); it must carry the stored task name.
    """
    validate_run_id(run_id)
    st = store if isinstance(store, Store) else Store(store)
    try:
        prev = st.load_run(run_id)
        info = prev.config.get("population")
        if not isinstance(info, dict) or "id" not in info:
            raise ValueError(f"run {run_id!r} is not a member of a population")
        pop_id, size = str(info["id"]), int(info["size"])
        ck_path = None
        member_runs = []
        ids = [r["id"] for r in st.list_runs()]
        for rid in ids:
            r = st.load_run(rid)
            pi = r.config.get("population")
            if isinstance(pi, dict) and pi.get("id") == pop_id:
                member_runs.append((int(pi["member"]), r))
        member_runs.sort(key=lambda t: t[0])
        if [i for i, _ in member_runs] != list(range(size)):
            raise ValueError(
                f"population {pop_id!r} is incomplete in the store ({len(member_runs)} of {size} members)"
            )
        runs = [r for _, r in member_runs]
        if all(r.status in DONE_STATUSES for r in runs):
            for r in runs:
                r.resumed = False  # type: ignore[attr-defined]
            return runs
        ck_path = checkpoint_dir(st, runs[0].id) / POPULATION_CHECKPOINT
        if not ck_path.exists():
            raise ValueError(
                f"population {pop_id!r} has no checkpoint to resume from (train it with checkpoint_every=N)"
            )
        ck = load_checkpoint(ck_path)
        if not isinstance(ck, dict):
            raise ValueError(f"checkpoint {str(ck_path)!r} is not a population checkpoint")
        ck["_ended"] = {r.id for r in runs if r.status in DONE_STATUSES}
        ck["_updated"] = {r.id: r.updated for r in runs}
        cfg = runs[0].config
        kw = train_keywords(cfg)
        optimizer = kw.pop("optimizer")
        for k in ("lr", "hparams", "seed"):
            kw.pop(k)
        members = [{"seed": r.config["seed"], "lr": r.config["lr"], "hparams": r.config["hparams"], "run_id": r.id}
                   for r in runs]  # fmt: skip
        if task is not None and task.name != cfg["task"]:
            raise ValueError(f"population {pop_id!r} trained task {cfg['task']!r}, not {task.name!r}")
        out = train_many(task if task is not None else cfg["task"], optimizer, members, store=st, population_id=pop_id, progress=progress,
                         threads=cfg.get("threads") or "auto", forward=info.get("forward", "auto"), _resume_from=ck,
                         **kw)  # fmt: skip
        for r in out:
            r.resumed = True  # type: ignore[attr-defined]
        return out
    finally:
        if not isinstance(store, Store):
            st.close()


def reopen_many(
    task: str | Task,
    optimizer: OptimizerSpec,
    members: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    store: Store,
    shared: Mapping[str, Any],
) -> list[Run]:
    """The ended runs ``ids`` of a population as stored (nothing written), checked against the settings a caller would
    train them with (``members`` and the ``shared`` keywords of ``train_many``); with ``keep_model`` (default) each
    member's model rebuilt from its ``final.pt``. ValueError when a stored run does not match or has no final model."""
    from descentlab import tasks as task_registry
    from descentlab.train.config import _optimizer_name

    parsed = _parse_members(members)
    runs = [store.load_run(i) for i in ids]
    name = _optimizer_name(optimizer)
    base_hp = dict(shared.get("hparams") or {})

    def norm(x: Any) -> str:
        return json.dumps(x, sort_keys=True, default=repr)

    for m, r in zip(parsed, runs, strict=True):
        c = r.config
        hp = {**base_hp, **m["hparams"]}
        if m["lr"] is None:
            hp.pop("lr", None)
        if c.get("optimizer") != name or c.get("seed") != m["seed"] or norm(c.get("hparams")) != norm(hp):
            raise ValueError(f"run {r.id!r} was trained with other settings")
        if m["lr"] is not None and c.get("lr") != m["lr"]:
            raise ValueError(f"run {r.id!r} was trained with another lr")
        for key in (
            "steps",
            "time_budget",
            "batch_size",
            "schedule",
            "schedule_kw",
            "eval_every",
            "averaging",
        ):
            if key in shared and shared[key] is not None and norm(shared[key]) != norm(c.get(key)):
                raise ValueError(f"run {r.id!r} was trained with another {key}")
        if not isinstance(c.get("population"), dict):
            raise ValueError(f"run {r.id!r} is not a population member")
    if shared.get("keep_model", True):
        task_obj = (
            task if isinstance(task, Task) else task_registry.get(task, **dict(shared.get("task_kw") or {}))
        )
        for r in runs:
            path = checkpoint_dir(store, r.id) / "final.pt"
            if not path.is_file():
                raise ValueError(f"run {r.id!r} has no final model to rebuild")
            saved = load_checkpoint(path)
            model = task_obj.make_model(int(r.config["seed"]))
            try:
                model.load_state_dict(saved["model"])
            except (KeyError, RuntimeError, TypeError) as exc:
                raise ValueError(f"the final model of run {r.id!r} does not fit: {str(exc)[:200]}") from None
            r.model = model  # type: ignore[attr-defined]
    for r in runs:
        r.resumed = False  # type: ignore[attr-defined]
    return runs
