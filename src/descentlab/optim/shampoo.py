"""Shampoo: Kronecker-factored full-matrix AdaGrad with grafting (Gupta, Koren, Singer 2018; seeds 000/002).

For a matrix gradient G (m x n) Shampoo keeps two statistics, L += G G^T (m x m) and R += G^T G (n x n) (an
exponential moving average when beta2 < 1, seed 000: L_k = beta L_{k-1} + (1 - beta) G_k G_k^T), and steps along
(L + eps I)^{-1/4} G (R + eps I)^{-1/4}. With a single gradient G = U S V^T that direction is exactly U V^T, Muon's
update (seeds 000/002, "Shampoo and Muon"). Both factors accumulate the *raw* gradient.

Design, following Distributed Shampoo (Shi et al. 2023, arXiv:2309.06497):
- beta1 is a bias-corrected EMA of the gradient (Adam's first moment, ``m_hat``); the preconditioners are applied to
  it, while L, R and the grafting statistics see the raw gradient. With Adam grafting and preconditioning not yet
  started, the update is exactly Adam's (AdamW's when weight_decay > 0: decay is decoupled, p *= 1 - lr * wd).
- Grafting (Agarwal et al. 2020): Shampoo's direction, rescaled per block to the Frobenius norm of the grafting
  method's direction: "adam" m_hat / (sqrt(v_hat) + eps_g), "adagrad" m_hat / (sqrt(sum g^2) + eps_g), "sgd" m_hat,
  "none" (Shampoo's own norm). Before ``start_preconditioning_step`` the grafting direction itself is used.
- Tensors with more than two dimensions are flattened to (shape[0], rest); a dimension above
  ``max_preconditioner_dim`` is cut into blocks of at most that size, each block with its own L, R and grafting norm.
  1-D parameters (and scalars) use the grafting direction ("none" then means m_hat, i.e. SGD with EMA momentum).
- Inverse fourth roots by ``torch.linalg.eigh`` of (stat + eps I), recomputed every ``precondition_frequency`` steps
  from ``start_preconditioning_step`` on; a failure (or a non-finite result) is retried in float64, and if that fails
  too the previous root is kept (the identity before the first success).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from descentlab.optim.registry import params_of, register

__all__ = ["GRAFTING_METHODS", "Shampoo", "inverse_fourth_root"]

GRAFTING_METHODS = ("adam", "adagrad", "sgd", "none")


def inverse_fourth_root(stat: Tensor, epsilon: float) -> Tensor | None:
    """(stat + epsilon I)^{-1/4} of a symmetric PSD matrix by eigh; float64 retry; None when both attempts fail."""
    eye = torch.eye(stat.shape[0], dtype=stat.dtype, device=stat.device)
    for dtype in (stat.dtype, torch.float64):
        try:
            mat = (stat + epsilon * eye).to(dtype)
            evals, evecs = torch.linalg.eigh(mat)
            evals = evals.clamp_min(epsilon)  # round-off can push the smallest below epsilon, even below 0
            root = (evecs * evals.pow(-0.25)) @ evecs.T
        except RuntimeError:  # torch.linalg.LinAlgError is a RuntimeError
            continue
        if torch.isfinite(root).all():
            return root.to(stat.dtype)
    return None


def _block_slices(size: int, block: int) -> list[slice]:
    return [slice(start, min(start + block, size)) for start in range(0, size, block)]


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class Shampoo(torch.optim.Optimizer):
    """Shampoo with blocking and per-block grafting (Gupta et al. 2018; Distributed Shampoo, Shi et al. 2023).

    See the module docstring for the update; ``grafting_beta2`` and ``grafting_epsilon`` are the Adam/AdaGrad
    grafting method's own constants (torch.optim.Adam's defaults).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 1.0),
        epsilon: float = 1e-12,
        precondition_frequency: int = 1,
        start_preconditioning_step: int = 1,
        max_preconditioner_dim: int = 1024,
        grafting: str = "adam",
        weight_decay: float = 0.0,
        grafting_beta2: float = 0.999,
        grafting_epsilon: float = 1e-8,
    ):
        if not (isinstance(lr, (int, float)) and lr >= 0.0):
            raise ValueError(f"lr must be a number >= 0, got {lr!r}")
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"betas[0] (momentum) must be in [0, 1), got {betas[0]!r}")
        if not 0.0 <= betas[1] <= 1.0:
            raise ValueError(f"betas[1] (statistics EMA; 1 = sum) must be in [0, 1], got {betas[1]!r}")
        if not epsilon > 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        _check_int("precondition_frequency", precondition_frequency, 1)
        _check_int("start_preconditioning_step", start_preconditioning_step, 1)
        _check_int("max_preconditioner_dim", max_preconditioner_dim, 1)
        if grafting not in GRAFTING_METHODS:
            raise ValueError(f"grafting must be one of {GRAFTING_METHODS}, got {grafting!r}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if not 0.0 <= grafting_beta2 < 1.0:
            raise ValueError(f"grafting_beta2 must be in [0, 1), got {grafting_beta2!r}")
        if not grafting_epsilon > 0.0:
            raise ValueError(f"grafting_epsilon must be > 0, got {grafting_epsilon!r}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            epsilon=epsilon,
            precondition_frequency=precondition_frequency,
            start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim,
            grafting=grafting,
            weight_decay=weight_decay,
            grafting_beta2=grafting_beta2,
            grafting_epsilon=grafting_epsilon,
        )
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["grafting"] in ("adam", "adagrad"):
                state["graft_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if p.dim() >= 2:
                rows, cols = p.shape[0], p[0].numel()
                block = group["max_preconditioner_dim"]
                stats_l, stats_r, roots_l, roots_r = [], [], [], []
                for rs in _block_slices(rows, block):
                    for cs in _block_slices(cols, block):
                        m, n = rs.stop - rs.start, cs.stop - cs.start
                        stats_l.append(torch.zeros(m, m, dtype=p.dtype, device=p.device))
                        stats_r.append(torch.zeros(n, n, dtype=p.dtype, device=p.device))
                        roots_l.append(torch.eye(m, dtype=p.dtype, device=p.device))
                        roots_r.append(torch.eye(n, dtype=p.dtype, device=p.device))
                state["L"], state["R"] = stats_l, stats_r
                state["root_L"], state["root_R"] = roots_l, roots_r
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Shampoo step; ``closure`` (zero grads, forward, backward, return loss) is called first if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise TypeError("Shampoo does not support sparse gradients")
                self._update_param(p, group)
        return loss

    def _update_param(self, p: Tensor, group: dict) -> None:
        grad = p.grad
        state = self._init_state(p, group)
        state["step"] += 1
        t = state["step"]
        lr, beta1 = group["lr"], group["betas"][0]
        grafting, geps = group["grafting"], group["grafting_epsilon"]

        # Grafting statistics and the first moment see the raw gradient.
        exp_avg = state["exp_avg"]
        exp_avg.lerp_(grad, 1.0 - beta1)
        m_hat = exp_avg / (1.0 - beta1**t)
        if grafting == "adam":
            gb2 = group["grafting_beta2"]
            state["graft_sq"].mul_(gb2).addcmul_(grad, grad, value=1.0 - gb2)
            graft_dir = m_hat / ((state["graft_sq"] / (1.0 - gb2**t)).sqrt_().add_(geps))
        elif grafting == "adagrad":
            state["graft_sq"].addcmul_(grad, grad)
            graft_dir = m_hat / state["graft_sq"].sqrt().add_(geps)
        else:  # "sgd" and "none"
            graft_dir = m_hat

        if p.dim() < 2:
            direction = graft_dir
        else:
            direction = self._precondition(p, grad, m_hat, graft_dir, state, group)

        if group["weight_decay"] != 0.0:
            p.mul_(1.0 - lr * group["weight_decay"])
        p.add_(direction, alpha=-lr)

    def _precondition(
        self, p: Tensor, grad: Tensor, m_hat: Tensor, graft_dir: Tensor, state: dict, group: dict
    ) -> Tensor:
        t = state["step"]
        beta2, eps = group["betas"][1], group["epsilon"]
        start, freq = group["start_preconditioning_step"], group["precondition_frequency"]
        preconditioning = t >= start
        refresh = preconditioning and (t - start) % freq == 0
        rows = p.shape[0]
        g2, m2, d2 = grad.reshape(rows, -1), m_hat.reshape(rows, -1), graft_dir.reshape(rows, -1)
        out = torch.empty_like(m2)
        block = group["max_preconditioner_dim"]
        i = 0
        for rs in _block_slices(rows, block):
            for cs in _block_slices(g2.shape[1], block):
                gb = g2[rs, cs]
                stat_l, stat_r = state["L"][i], state["R"][i]
                if beta2 == 1.0:
                    stat_l.addmm_(gb, gb.T)
                    stat_r.addmm_(gb.T, gb)
                else:
                    stat_l.mul_(beta2).addmm_(gb, gb.T, alpha=1.0 - beta2)
                    stat_r.mul_(beta2).addmm_(gb.T, gb, alpha=1.0 - beta2)
                if refresh:
                    for stat, key in ((stat_l, "root_L"), (stat_r, "root_R")):
                        root = inverse_fourth_root(stat, eps)
                        if root is not None:  # keep the previous root when both attempts failed
                            state[key][i] = root
                if not preconditioning:
                    out[rs, cs] = d2[rs, cs]
                else:
                    shampoo_dir = state["root_L"][i] @ m2[rs, cs] @ state["root_R"][i]
                    if group["grafting"] == "none":
                        out[rs, cs] = shampoo_dir
                    else:
                        s_norm = torch.linalg.vector_norm(shampoo_dir)
                        g_norm = torch.linalg.vector_norm(d2[rs, cs])
                        scale = torch.where(
                            s_norm > 0, g_norm / s_norm.clamp_min(torch.finfo(s_norm.dtype).tiny), 0
                        )
                        out[rs, cs] = shampoo_dir * scale
                i += 1
        return out.view_as(p)


def _shampoo_factory(params_or_model: Any, **hparams: Any) -> Shampoo:
    return Shampoo(params_of(params_or_model), **hparams)


register(
    "shampoo",
    _shampoo_factory,
    "Shampoo: L^-1/4 G R^-1/4 Kronecker preconditioning, blocked, Adam-grafted (Gupta et al. 2018)",
)
