"""modular: the equations are right, the split is a partition, the transformer is causal and its fast readout exact."""

from __future__ import annotations

import pytest
import torch

from descentlab import tasks
from descentlab.tasks.modular import modular_table


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_equations_are_correct(op: str) -> None:
    p = 97
    x, res = modular_table(p, op)
    a, b = x[:, 0], x[:, 2]
    assert (x[:, 1] == p).all() and (x[:, 3] == p + 1).all()
    assert len(res) == (p * (p - 1) if op == "/" else p * p)
    assert ((res >= 0) & (res < p)).all()
    if op == "+":
        assert ((res - a - b) % p == 0).all()
    elif op == "-":
        assert ((res + b - a) % p == 0).all()
    elif op == "*":
        assert ((res - a * b) % p == 0).all()
    else:
        assert (b != 0).all()
        assert ((b * res - a) % p == 0).all()  # b * (a / b) == a mod p


def test_split_is_a_seeded_partition() -> None:
    task = tasks.get("modular", op="/", train_fraction=0.3, seed=1)
    p = 97
    n = p * (p - 1)
    xt, xv = task.train_data[0], task.val_data[0]
    assert len(xt) == round(0.3 * n) and len(xt) + len(xv) == n
    keys = lambda x: set((x[:, 0] * p + x[:, 2]).tolist())  # noqa: E731
    assert keys(xt).isdisjoint(keys(xv)) and len(keys(xt) | keys(xv)) == n
    assert (task.train_data[1] * task.train_data[0][:, 2] % p == task.train_data[0][:, 0]).all()


def test_transformer_shapes_causality_and_fast_readout() -> None:
    task = tasks.get("modular", p=11, width=32, heads=4, depth=2)
    model = task.make_model(0).eval()
    x = task.train_data[0][:9]
    out = model(x)
    assert out.shape == (9, 11)
    model.last_only = False  # the full causal forward over all positions, the plain reference
    full = model(x)
    assert full.shape == (9, 4, 11)
    assert torch.allclose(full[:, -1], out, atol=1e-5)
    x2 = x.clone()
    x2[:, 3] = 0  # changing the last token must not change earlier positions
    assert torch.allclose(model(x2)[:, :3], full[:, :3], atol=1e-6)


def test_default_model_size() -> None:
    model = tasks.get("modular").make_model(0)
    assert model.tok.num_embeddings == 99 and model.head.out_features == 97
    assert len(model.blocks) == 2 and model.blocks[0].mlp[0].out_features == 512


def test_bad_options() -> None:
    for kw in ({"op": "^"}, {"p": 96, "op": "/"}, {"train_fraction": 1.0}, {"width": 30, "heads": 4}):
        with pytest.raises(ValueError):
            tasks.get("modular", **kw)


def test_learns_small_addition_table() -> None:
    task = tasks.get("modular", p=7, train_fraction=0.9, width=32, heads=2, depth=2)
    model = task.make_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    stream = task.batches(64, seed=0)
    for _ in range(300):
        opt.zero_grad()
        task.loss(model, next(stream)).backward()
        opt.step()
    assert task.evaluate(model)["train_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("tq", "t", "causal"), [(4, 4, True), (1, 4, False), (8, 8, True), (16, 16, True), (1, 12, False)]
)
def test_short_attention_equals_fused_kernel_and_its_gradients(tq: int, t: int, causal: bool) -> None:
    """The explicit short-sequence attention equals torch's fused kernel, values and gradients (float64)."""
    import torch.nn.functional as F

    from descentlab.tasks.modular import attention

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(3, 2, tq, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    k, v = (torch.randn(3, 2, t, 8, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(2))
    ours, ref = attention(q, k, v, causal), F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("p", "depth"), [(11, 1), (11, 2), (97, 2), (11, 3)])
def test_shared_prefix_forward_equals_plain_forward_values_and_gradients(p: int, depth: int) -> None:
    """The read-out computed once per distinct prefix equals every-position-of-every-sequence, to 1e-10 (float64)."""
    task = tasks.get("modular", p=p, width=32, heads=4, depth=depth)
    model = task.make_model(0).double()
    x = task.train_data[0][:200]
    x = torch.cat([x, x[:30], torch.tensor([[0, p, 0, p + 1]])])  # repeated sequences and a repeated prefix
    out: dict[bool, tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = {}
    for shared in (True, False):
        model.share_prefixes = shared
        y = model(x)
        w = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).view_as(y)
        out[shared] = (y, torch.autograd.grad((w * y).sum(), list(model.parameters())))
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-10, atol=1e-10)
    for a, b in zip(out[True][1], out[False][1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_shared_prefix_forward_has_second_derivatives() -> None:
    """Hessian-vector products (landscape, sharpness) agree between the shared and plain forwards."""
    task = tasks.get("modular", p=11, width=16, heads=2, depth=2)
    model = task.make_model(0).double()
    x, y = task.train_data[0][:64], task.train_data[1][:64]
    params = list(model.parameters())
    vec = [torch.randn_like(p) for p in params]
    hv = {}
    for shared in (True, False):
        model.share_prefixes = shared
        g = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), params, create_graph=True)
        hv[shared] = torch.autograd.grad(sum((a * v).sum() for a, v in zip(g, vec)), params)
    for a, b in zip(hv[True], hv[False]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
