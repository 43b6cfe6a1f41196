"""charlm's speedrun options: each changes the forward as documented; all off is the plain Transformer."""

from __future__ import annotations

import math

import pytest
import torch

from descentlab import tasks
from descentlab.tasks.charlm import GPT, ReLU2, gpt_family, parameter_count, rms_normalize, rotate
from descentlab.tasks.modular import Transformer


def _pair(**options):
    torch.manual_seed(0)
    plain = Transformer(96, 96, 16, 32, 2, 2, 128)
    torch.manual_seed(0)
    gpt = GPT(96, 16, 32, 2, 2, 128, **options)
    return plain, gpt


def test_all_options_off_is_the_transformer() -> None:
    plain, gpt = _pair()
    x = torch.randint(0, 96, (3, 16))
    assert torch.equal(plain(x), gpt(x))
    assert plain.state_dict().keys() == gpt.state_dict().keys()
    assert (
        type(tasks.get("charlm", width=32, heads=2, context=16).make_model(0)) is Transformer
    )  # default unchanged
    assert isinstance(tasks.get("charlm", width=32, heads=2, context=16, relu2=True).make_model(0), GPT)


def test_rotary_matches_the_complex_formula_and_keeps_norms() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    y = rotate(x)
    # Plain formula: pair (x_i, x_{i+d/2}) as the complex number x_i + i x_{i+d/2}, times exp(i t theta_i).
    half = 4
    theta = 10000.0 ** (-torch.arange(half, dtype=torch.float64) * 2 / 8)
    z = torch.complex(x[..., :half], x[..., half:]) * torch.exp(
        1j * torch.arange(7.0, dtype=torch.float64)[:, None] * theta
    )
    assert torch.allclose(y, torch.cat([z.real, z.imag], -1), atol=1e-5)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.equal(y[..., 0, :], x[..., 0, :])  # position 0 is not rotated
    # Relative positions: <R_m q, R_n k> depends on m - n only (same q, k placed at (5, 2) and at (4, 1)).
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    seq_q, seq_k = torch.zeros(7, 8, dtype=torch.float64), torch.zeros(7, 8, dtype=torch.float64)
    seq_q[5], seq_q[4], seq_k[2], seq_k[1] = q, q, k, k
    rq, rk = rotate(seq_q), rotate(seq_k)
    assert float(rq[5] @ rk[2]) == pytest.approx(float(rq[4] @ rk[1]), abs=1e-5)
    assert float(rq[5] @ rk[2]) != pytest.approx(float(q @ k), abs=1e-3)


def test_rotary_replaces_learned_positions_and_is_causal() -> None:
    _, gpt = _pair(rotary=True)
    assert gpt.pos is None and not any(n.startswith("pos") for n, _ in gpt.named_parameters())
    x = torch.randint(0, 96, (2, 16))
    out = gpt(x)
    x2 = x.clone()
    x2[:, 9:] = 0
    assert torch.allclose(gpt(x2)[:, :9], out[:, :9], atol=1e-6)
    with pytest.raises(ValueError, match="even head dimension"):
        GPT(96, 16, 6, 2, 1, rotary=True)


def test_relu2_and_qk_norm() -> None:
    assert torch.equal(ReLU2()(torch.tensor([-2.0, 0.5, 3.0])), torch.tensor([0.0, 0.25, 9.0]))
    _, gpt = _pair(relu2=True)
    assert all(isinstance(b.mlp[1], ReLU2) for b in gpt.blocks)
    q = torch.randn(4, 5, 16) * 7
    n = rms_normalize(q)
    assert torch.allclose(n.pow(2).mean(-1), torch.ones(4, 5), atol=1e-4)
    assert torch.allclose(rms_normalize(3 * q), n, atol=1e-5)  # scale invariant
    plain, gpt = _pair(qk_norm=True)
    x = torch.randint(0, 96, (2, 16))
    assert not torch.allclose(plain(x), gpt(x))
    with torch.no_grad():  # QK-norm makes the attention blind to the scale of the query/key weights
        before = gpt(x)
        for b in gpt.blocks:
            b.qkv.weight[:64] *= 5.0
            b.qkv.bias[:64] *= 5.0
        assert torch.allclose(gpt(x), before, atol=1e-4)


def test_zero_init_makes_every_block_the_identity_and_logits_zero() -> None:
    _, gpt = _pair(zero_init=True)
    h = torch.randn(2, 16, 32)
    for b in gpt.blocks:
        assert torch.equal(gpt.block(b, h), h)
    logits = gpt(torch.randint(0, 96, (2, 16)))
    assert torch.equal(logits, torch.zeros_like(logits))
    task = tasks.get("charlm", width=32, heads=2, context=16, zero_init=True)
    assert task.evaluate(task.make_model(0))["loss"] == pytest.approx(math.log(96), rel=1e-6)


def test_softcap_bounds_logits_by_cap_tanh() -> None:
    plain, gpt = _pair(softcap=2.0)
    with torch.no_grad():
        plain.head.weight.mul_(50)
        gpt.head.weight.mul_(50)
    x = torch.randint(0, 96, (2, 16))
    raw, capped = plain(x), gpt(x)
    assert raw.abs().max() > 2.0
    assert torch.allclose(capped, 2.0 * torch.tanh(raw / 2.0), atol=1e-6)
    assert capped.abs().max() <= 2.0  # tanh saturates to the cap in float32
    with pytest.raises(ValueError, match="softcap"):
        tasks.get("charlm", softcap=-1.0)


def test_family_scales_by_width() -> None:
    counts = [
        parameter_count(tasks.get("charlm", **gpt_family(w, context=32)).make_model(0)) for w in (16, 32, 64)
    ]
    assert counts == sorted(counts) and counts[-1] / counts[0] > 8
    assert gpt_family(64) == {"width": 64, "heads": 4, "depth": 2, "context": 64}
    with pytest.raises(ValueError):
        gpt_family(20)
    with pytest.raises(ValueError, match="eval_windows"):
        tasks.get("charlm", eval_windows=0)
    assert (
        tasks.get("charlm", context=16, eval_windows=5)
        ._fixed_windows(tasks.get("charlm").val_data[0])[0]
        .shape[0]
        == 5
    )
