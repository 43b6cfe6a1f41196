"""AlgoPerf's 2026 self-tuning field as entrants (issue 29): each entrant's optimizer, built from its one fixed point,
against a plain transcription of the submission's update (mlcommons/submissions_algorithms,
``submissions/self_tuning/<name>/submission.py``; the transcriptions below are written from the update rules, in torch's
parameter layout) on the same float64 gradients for 60 steps under the same learning-rate multipliers."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from descentlab import optim
from descentlab.bench import available_algorithms, get_algorithm, get_workload, plan, run_trial
from descentlab.bench.algorithms import RULESETS

STEPS = 60
ENTRANTS = ("st_nadamw", "st_cautious_nadamw", "st_lion", "st_ademamix", "st_muon")


class Net(nn.Module):
    """An embedding (to the submissions' "pair" side), a hidden matrix, an output head and biases."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(6, 4)
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)


def _model() -> nn.Module:
    return Net().double()


def _grads(model: nn.Module, scale: float = 1.0) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(7)
    return [
        {
            n: scale * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            for n, p in model.named_parameters()
        }
        for _ in range(STEPS)
    ]


def _factors() -> list[float]:
    """A warmup then cosine multiplier, never 0 (both sides get the same lr_t = lr * factor)."""
    return [min(1.0, (t + 1) / 5) * 0.5 * (1 + math.cos(math.pi * t / STEPS)) + 1e-3 for t in range(STEPS)]


def _ours(name: str, grads, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    model = model or _model()
    alg = get_algorithm(name)
    kw = alg.train_kwargs(alg.default)
    opt = optim.create(kw["optimizer"], model, lr=kw["lr"], **kw["hparams"])
    lrs = [g["lr"] for g in opt.param_groups]
    params = dict(model.named_parameters())
    for f, gs in zip(_factors(), grads):
        for g, lr in zip(opt.param_groups, lrs):
            g["lr"] = lr * f
        for n, p in params.items():
            p.grad = gs[n].clone()
        opt.step()
    return {n: p.detach().clone() for n, p in params.items()}


def _initial() -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in _model().named_parameters()}


def _nadamw_reference(grads, lr, b1, b2, wd, eps, cautious: bool) -> dict[str, torch.Tensor]:
    """submissions/self_tuning/{baseline (v0.6), cautious_nadamw}: optax chain scale_by_nadam (+ the mask), then
    add_decayed_weights, then the scheduled lr: p <- p - lr_t (u + wd p)."""
    x = _initial()
    mu = {n: torch.zeros_like(v) for n, v in x.items()}
    nu = {n: torch.zeros_like(v) for n, v in x.items()}
    for t, (f, gs) in enumerate(zip(_factors(), grads), start=1):
        for n in x:
            g = gs[n]
            mu[n] = (1 - b1) * g + b1 * mu[n]
            nu[n] = (1 - b2) * g**2 + b2 * nu[n]
            mu_hat = ((1 - b1) * g + b1 * mu[n]) / (1 - b1**t)
            nu_hat = nu[n] / (1 - b2**t)
            m = mu_hat
            if cautious:
                mask = (mu_hat * g > 0).double()
                m = mu_hat * (mask / max(float(mask.mean()), 1e-3))
            u = m / (nu_hat.sqrt() + eps)
            x[n] = x[n] - lr * f * (u + wd * x[n])
    return x


@pytest.mark.parametrize("name, cautious", [("st_nadamw", False), ("st_cautious_nadamw", True)])
def test_nadamw_and_cautious_nadamw_match_the_submissions(name, cautious):
    grads = _grads(_model())
    p = get_algorithm(name).default
    ref = _nadamw_reference(
        grads, p["lr"], 1 - p["one_minus_beta1"], p["beta2"], p["weight_decay"], 1e-8, cautious
    )
    ours = _ours(name, grads)
    for n in ref:
        torch.testing.assert_close(ours[n], ref[n], rtol=1e-10, atol=1e-12)
    if cautious:  # the mask changes the trajectory: the two entrants differ
        plain = _ours("st_nadamw", grads)
        assert max(float((plain[n] - ours[n]).abs().max()) for n in ref) > 1e-4


def test_lion_matches_the_submission():
    """submissions/self_tuning/lion (modified from google/automl's lion_pytorch): decay p *= 1 - lr wd, then
    p -= lr sign(b1 m + (1 - b1) g), then m <- b2 m + (1 - b2) g."""
    grads = _grads(_model())
    p = get_algorithm("st_lion").default
    lr, b1, b2, wd = p["lr"], 1 - p["one_minus_beta1"], p["beta2"], p["weight_decay"]
    x = _initial()
    m = {n: torch.zeros_like(v) for n, v in x.items()}
    for f, gs in zip(_factors(), grads):
        for n in x:
            x[n] = x[n] * (1 - lr * f * wd)
            x[n] = x[n] - lr * f * torch.sign(b1 * m[n] + (1 - b1) * gs[n])
            m[n] = b2 * m[n] + (1 - b2) * gs[n]
    ours = _ours("st_lion", grads)
    for n in x:
        torch.testing.assert_close(ours[n], x[n], rtol=1e-12, atol=1e-14)


def _ademamix_reference(grads, lr, wd, clip) -> dict[str, torch.Tensor]:
    """submissions/self_tuning/ademamix (torch): global-norm clipping of the gradients at ``clip`` (factor clip /
    (norm + 1e-6), at most 1), then per parameter the AdEMAMix step with alpha and beta3 warmed up over T steps
    (linear in alpha, beta3 by its half-life) and decay inside the update: p -= lr_t (adam + alpha m_slow + wd p)."""
    b1, b2, b3, alpha, T, eps = 0.8, 0.995, 0.9995, 8.0, 500_000, 1e-8

    def half_life(beta: float) -> float:
        return math.log(0.5) / math.log(beta + 1e-8) - 1

    x = _initial()
    m1, m2, nu = ({n: torch.zeros_like(v) for n, v in x.items()} for _ in range(3))
    for t, (f, gs) in enumerate(zip(_factors(), grads), start=1):
        norm = math.sqrt(sum(float((g**2).sum()) for g in gs.values()))
        c = min(1.0, clip / (norm + 1e-6))
        a = t / T
        alpha_t = a * alpha
        beta3_t = 0.5 ** (1 / ((1 - a) * half_life(b1) + a * half_life(b3) + 1))
        for n in x:
            g = c * gs[n]
            m1[n] = b1 * m1[n] + (1 - b1) * g
            m2[n] = beta3_t * m2[n] + (1 - beta3_t) * g
            nu[n] = b2 * nu[n] + (1 - b2) * g * g
            denom = nu[n].sqrt() / math.sqrt(1 - b2**t) + eps
            update = (m1[n] / (1 - b1**t) + alpha_t * m2[n]) / denom + wd * x[n]
            x[n] = x[n] - lr * f * update
    return x


def test_ademamix_with_its_clipping_matches_the_submission():
    grads = _grads(_model(), scale=3.0)  # norms ~ 20: the clipping at 0.5 acts at every step
    p = get_algorithm("st_ademamix").default
    ref = _ademamix_reference(grads, p["lr"], p["weight_decay"], clip=0.5)
    ours = _ours("st_ademamix", grads)
    for n in ref:
        torch.testing.assert_close(ours[n], ref[n], rtol=1e-8, atol=1e-10)
    unclipped = _ademamix_reference(grads, p["lr"], p["weight_decay"], clip=1e9)
    assert max(float((unclipped[n] - ours[n]).abs().max()) for n in ref) > 1e-3  # the clipping matters here


def _newton_schulz(m: torch.Tensor) -> torch.Tensor:
    """The submission's orthogonalize_via_newton_schulz in torch's (out, in) layout: Frobenius normalization
    (+ 1e-7), 5 quintic steps (3.4445, -4.7750, 2.0315), scaled by max(1, sqrt(fan_out / fan_in))."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = m / (torch.linalg.matrix_norm(m) + 1e-7)
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    rows, cols = m.shape
    return x * max(1.0, math.sqrt(rows / cols))


def test_muon_matches_the_submission():
    """submissions/self_tuning/muon (JAX): every >= 2-D parameter whose path has no 'embed' goes to Muon (the output
    head too): momentum without Nesterov, Newton-Schulz, p -= lr_t mult (O + wd p); the rest to AlgoPerf's NAdamW
    ("pair") with its own betas and decay at lr_t."""
    hp = {"lr": 0.0001357495179, "mult": 28.61130298, "beta": 0.9560745273, "wd": 0.02397563985,
          "b1": 0.96586744, "b2": 0.8629173173, "pair_wd": 0.01275028385}  # fmt: skip
    model = _model()
    grads = _grads(model)
    x = _initial()
    muon = {n for n, v in x.items() if v.ndim >= 2 and "embed" not in n}
    assert muon == {"fc1.weight", "fc2.weight"}
    buf = {n: torch.zeros_like(x[n]) for n in muon}
    mu = {n: torch.zeros_like(v) for n, v in x.items()}
    nu = {n: torch.zeros_like(v) for n, v in x.items()}
    b1, b2 = hp["b1"], hp["b2"]
    for t, (f, gs) in enumerate(zip(_factors(), grads), start=1):
        lr = hp["lr"] * f
        for n in x:
            g = gs[n]
            if n in muon:
                buf[n] = (1 - hp["beta"]) * g + hp["beta"] * buf[n]
                x[n] = x[n] - lr * hp["mult"] * (_newton_schulz(buf[n]) + hp["wd"] * x[n])
            else:
                mu[n] = (1 - b1) * g + b1 * mu[n]
                nu[n] = (1 - b2) * g**2 + b2 * nu[n]
                mu_hat = ((1 - b1) * g + b1 * mu[n]) / (1 - b1**t)
                u = mu_hat / ((nu[n] / (1 - b2**t)).sqrt() + 1e-8)
                x[n] = x[n] - lr * (u + hp["pair_wd"] * x[n])
    ours = _ours("st_muon", grads, model)
    for n in x:
        torch.testing.assert_close(ours[n], x[n], rtol=1e-9, atol=1e-11)


def test_self_tuning_entrants_enter_the_self_tuning_ruleset_only():
    assert RULESETS == ("external", "self")
    external, self_tuning = available_algorithms("external"), available_algorithms("self")
    for name in ENTRANTS:
        assert get_algorithm(name).rulesets == ("self",) and name in self_tuning and name not in external
    assert "nadamw" in external and "nadamw" in self_tuning
    specs = plan(list(ENTRANTS), ["tiny"], tuning="self", studies=2)
    assert len(specs) == 2 * len(ENTRANTS) and {s["tuning"] for s in specs} == {"self"}
    spec = json.loads(json.dumps(specs[2]))  # a trial's spec as a worker process reads it
    assert spec["algorithm"]["rulesets"] == ["self"]
    r = run_trial(spec)
    assert r["status"] == "finished" and not r["error"], r
    with pytest.raises(ValueError, match="st_lion.*self ruleset only"):
        plan(["st_lion"], ["tiny"], tuning="external")
    with pytest.raises(ValueError, match="tuning must be one of"):
        available_algorithms("both")
    # the Muon submission puts the output head on Muon: it applies to logistic regression (one matrix), muon does not
    assert get_algorithm("st_muon").not_applicable(get_workload("logreg")) is None
    assert get_algorithm("muon").not_applicable(get_workload("logreg"))


def test_cautious_options_reject_bad_values_and_keep_the_papers_default():
    model = _model()
    with pytest.raises(ValueError, match="mask_floor"):
        optim.create("cautious", model, base="adamw", mask_floor=0.0)
    with pytest.raises(ValueError, match="decay_order"):
        optim.create("cautious", model, base="adamw", decay_order="during")
    g = torch.tensor([1.0, -1.0, 1.0, 1.0])
    u = torch.tensor([1.0, 1.0, -1.0, 1.0])  # agrees on 2 of 4
    assert torch.equal(optim.cautious.cautious_mask(u, g), torch.tensor([1.0, 0, 0, 1.0]) * 4 / 3)
    assert torch.equal(optim.cautious.cautious_mask(u, g, floor=1e-3), torch.tensor([1.0, 0, 0, 1.0]) * 2)
    none = torch.tensor([-1.0, -1.0, -1.0, -1.0])
    assert float(optim.cautious.cautious_mask(none, g.abs(), floor=1e-3).sum()) == 0.0


def test_clipped_scales_the_global_norm_and_refuses_bad_values():
    model = nn.Linear(3, 2).double()
    opt = optim.create("clipped", model, base="sgd", lr=1.0, max_norm=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    grads = [torch.full_like(p, 2.0) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    opt.step()
    norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
    for p, x0, g in zip(model.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), x0 - g * 0.5 / (norm + 1e-6))
    sd = opt.state_dict()
    assert sd["clip"] == {"max_norm": 0.5}
    fresh = optim.create("clipped", nn.Linear(3, 2).double(), base="sgd", lr=1.0, max_norm=2.0)
    fresh.load_state_dict(sd)
    assert fresh.max_norm == 0.5
    with pytest.raises(ValueError, match="max_norm"):
        optim.create("clipped", model, base="sgd", lr=1.0, max_norm=0)
    with pytest.raises(ValueError, match="another optimizer"):
        optim.create("clipped", model, base="clipped", lr=1.0)


def test_the_cautious_wrapper_with_the_submissions_options_is_the_fused_update():
    """``cautious(base=algoperf_nadamw, mask_floor=1e-3, decay_order="before")`` (any base) and AlgoPerfNAdamW's fused
    ``cautious_floor`` (the entrant, no per-step copies) give the submission's update."""
    p = get_algorithm("st_cautious_nadamw").default
    kw = {"lr": p["lr"], "betas": (1 - p["one_minus_beta1"], p["beta2"]), "eps": 1e-8}
    grads = _grads(_model())
    runs = {}
    for label, make in (
        ("wrapper", lambda m: optim.create("cautious", m, base="algoperf_nadamw", mask_floor=1e-3,
                                           decay_order="before", weight_decay=p["weight_decay"], **kw)),
        ("fused", lambda m: optim.create("algoperf_nadamw", m, cautious_floor=1e-3, weight_decay=p["weight_decay"],
                                         **kw)),
    ):  # fmt: skip
        model = _model()
        opt = make(model)
        params = dict(model.named_parameters())
        for f, gs in zip(_factors(), grads):
            for g in opt.param_groups:
                g["lr"] = p["lr"] * f
            for n, q in params.items():
                q.grad = gs[n].clone()
            opt.step()
        runs[label] = {n: q.detach().clone() for n, q in params.items()}
    for n in runs["fused"]:
        torch.testing.assert_close(runs["wrapper"][n], runs["fused"][n], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="cautious_floor"):
        optim.create("algoperf_nadamw", _model(), cautious_floor=0.0)
