"""Issue 21: orthogonalize's kernels are chosen by a rule of the hardware description, and every plan agrees."""

from __future__ import annotations

import logging

import pytest
import torch

from descentlab.hardware import Hardware
from descentlab.optim.orthogonalize import (
    NEWTON_SCHULZ_COEFFICIENTS,
    _iterate_direct,
    _iterate_gram,
    choose_plan,
    explain_plans,
    orthogonalize,
    singular_value_band,
)

AMX = {"amx": True, "avx512_bf16": True}
AVX2: dict = {}


def test_amx_takes_bf16_and_one_large_product_avx2_takes_fp32_strips():
    amx, avx2 = Hardware.from_dict(AMX), Hardware.from_dict(AVX2)
    assert amx.fast_bf16 and amx.kind == "AMX" and not avx2.fast_bf16 and avx2.kind == "AVX2"
    square = choose_plan((12, 512, 512), hardware=amx)
    assert (square.dtype, square.gram, square.strips, square.batched) == (torch.bfloat16, False, False, False)
    square = choose_plan((12, 512, 512), hardware=avx2)
    assert (square.dtype, square.gram, square.strips, square.batched) == (torch.float32, False, True, False)
    for shape in ((512, 2048), (2048, 512)):  # wide or tall: the Gram iteration on the 512 side, any kind
        assert choose_plan(shape, hardware=amx).gram and choose_plan(shape, hardware=avx2).gram
    assert not choose_plan((256, 256), hardware=avx2).strips  # below 384 rows strips were measured slower
    assert choose_plan((512, 512), input_dtype=torch.float64, hardware=amx).dtype == torch.float64
    cuda = choose_plan((12, 512, 512), device="cuda", hardware=avx2)
    assert (cuda.dtype, cuda.strips, cuda.batched) == (torch.bfloat16, False, True)
    # AVX512-BF16 without AMX: native bf16 on vector units, strips kept (not measured, said so)
    plan = choose_plan((512, 512), hardware=Hardware.fake(avx512_bf16=True))
    assert plan.dtype == torch.bfloat16 and plan.strips and "not measured" in plan.describe()


def test_the_choice_is_deterministic_and_explained(caplog):
    spec = {"amx": True, "avx512_bf16": True, "cores": 8}
    plans = {choose_plan((4, 512, 2048), hardware=Hardware.from_dict(dict(spec))) for _ in range(3)}
    assert len(plans) == 1
    lines = explain_plans(hardware=Hardware.from_dict(AMX))
    assert lines[0].startswith("hardware: fake CPU (AMX;") and any(
        line.startswith("512x512: bfloat16") for line in lines
    )
    assert "emulated" in choose_plan((512, 512), hardware=Hardware.fake()).describe()
    with caplog.at_level(logging.DEBUG, logger="descentlab.kernels"):
        choose_plan((3, 777, 555), hardware=Hardware.fake(cores=3))
    assert "orthogonalize 555x777 (batch 3)" in caplog.text


@pytest.mark.parametrize("shape", [(400, 400), (400, 1000)])
def test_strip_and_plain_products_agree_to_rounding(shape):
    """fp32 plans agree to 1e-4 (entries are ~1/sqrt(rows)); bf16 plans to 5e-2, both the documented tolerance."""
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    X = G / G.norm()
    coefficients = [NEWTON_SCHULZ_COEFFICIENTS] * 5
    for gram in (False, True):
        for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-12)):
            Y = X.to(dtype)
            runs = [_iterate_gram(Y, coefficients, 0, s) if gram else _iterate_direct(Y, coefficients, s)
                    for s in (True, False)]  # fmt: skip
            assert (runs[0] - runs[1]).abs().max() < tol
    Y = X.bfloat16()
    runs = [_iterate_direct(Y, coefficients, s).float() for s in (True, False)]
    assert (runs[0] - runs[1]).abs().max() < 5e-2


@pytest.mark.slow
def test_amx_plan_and_avx2_plan_give_the_same_band():
    """The AMX plan (bf16, plain products; emulated here) and the AVX2 plan (fp32 strips) land in one band."""
    G = torch.randn(400, 1000, generator=torch.Generator().manual_seed(1))
    amx = orthogonalize(G, hardware=Hardware.from_dict(AMX))
    avx2 = orthogonalize(G, hardware=Hardware.from_dict(AVX2))
    lo_a, hi_a = singular_value_band(amx)
    lo_b, hi_b = singular_value_band(avx2)
    assert abs(hi_a - hi_b) < 0.05 and abs(lo_a - lo_b) < 0.1
    assert (amx - avx2).abs().max() < 5e-2 * avx2.abs().max()


def test_measured_mode_times_the_candidates_once(monkeypatch):
    import importlib

    module = importlib.import_module("descentlab.optim.orthogonalize")
    monkeypatch.setenv("DESCENTLAB_KERNELS", "measure")
    module._measured.cache_clear()
    plan = choose_plan((64, 200))
    assert (
        plan.source == "measured"
        and "timed once: direct/plain" in plan.describe()
        and "Gram/plain" in plan.describe()
    )
    assert choose_plan((64, 200)) is plan  # cached for the process
    assert choose_plan((64, 200), hardware=Hardware.fake()).source == "rule"  # a given description: the rule
    G = torch.randn(64, 200, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(orthogonalize(G), orthogonalize(G, gram=plan.gram), atol=0, rtol=0)


def test_cli_explains_muons_kernels(capsys):
    from descentlab.cli import main

    assert main(["optimizers", "--explain", "muon"]) == 0
    out = capsys.readouterr().out
    assert "hardware:" in out and "512x512:" in out and "muon orthogonalizes" in out
    assert main(["optimizers", "--explain", "adam"]) == 0 and "one implementation" in capsys.readouterr().out
    assert main(["optimizers", "--explain", "nope"]) == 2


def test_a_batch_split_over_threads_gives_the_same_matrices():
    avx2 = Hardware.fake()
    assert choose_plan((12, 512, 512), hardware=avx2).split
    assert not choose_plan((512, 512), hardware=avx2).split  # one matrix: torch's own threads
    assert not choose_plan((12, 64, 64), hardware=avx2).split  # too small to pay for a thread
    assert not choose_plan((12, 512, 512), device="cuda", hardware=avx2).split
    G = torch.randn(3, 200, 300, generator=torch.Generator().manual_seed(3))
    from descentlab.threads import torch_threads

    with torch_threads(1):
        one = orthogonalize(G)
    with torch_threads(3):
        split = orthogonalize(G)
        assert torch.get_num_threads() == 3
    torch.testing.assert_close(split, one, atol=0, rtol=0)
