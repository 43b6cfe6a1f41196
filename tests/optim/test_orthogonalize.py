"""orthogonalize against plainly written references: float64 SVD, the quintic iterations written out, the paper's table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descentlab.optim.orthogonalize import orthogonalize, singular_value_band

JORDAN = (3.4445, -4.7750, 2.0315)
# Amsel et al. 2025, Algorithm 1 (typed from the paper, then the 1.01 safety factor on all but the last).
PAPER = [
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
]


def quintic_reference(G: np.ndarray, coeffs: list, scale: float = 1.0) -> np.ndarray:
    """X <- a X + b (X X^T) X + c (X X^T)^2 X in float64 on the wide orientation."""
    tall = G.shape[0] > G.shape[1]
    X = G.T if tall else G
    X = X / (np.linalg.norm(X) * scale + 1e-7)
    for a, b, c in coeffs:
        A = X @ X.T
        X = a * X + b * A @ X + c * A @ A @ X
    return X.T if tall else X


def svd_msign(G: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(G, full_matrices=False)
    return U @ Vt


def random_matrix(m: int, n: int, cond: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    k = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, k)))
    V, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.logspace(0, -np.log10(cond), k)
    return torch.from_numpy((U * s) @ V.T)


@pytest.mark.parametrize("shape", [(8, 8), (6, 20), (20, 6)])
def test_svd_method_is_u_vt(shape):
    G = random_matrix(*shape, cond=50, seed=0)
    assert torch.allclose(orthogonalize(G, method="svd"), torch.from_numpy(svd_msign(G.numpy())), atol=1e-10)


def test_svd_method_drops_zero_singular_values():
    rng = np.random.default_rng(1)
    U, _ = np.linalg.qr(rng.standard_normal((10, 3)))
    V, _ = np.linalg.qr(rng.standard_normal((7, 3)))
    G = torch.from_numpy(U @ np.diag([3.0, 2.0, 0.5]) @ V.T)
    assert torch.allclose(orthogonalize(G, method="svd"), torch.from_numpy(U @ V.T), atol=1e-10)


@pytest.mark.parametrize("shape", [(8, 8), (6, 20), (20, 6), (5, 30)])
@pytest.mark.parametrize("gram", [False, True])
def test_newton_schulz_fp32_matches_written_out_quintic(shape, gram):
    G = random_matrix(*shape, cond=20, seed=2).float()
    ours = orthogonalize(G, method="newton_schulz", steps=5, dtype=torch.float32, gram=gram)
    ref = quintic_reference(G.double().numpy(), [JORDAN] * 5)
    assert np.allclose(ours.double().numpy(), ref, atol=2e-5)


@pytest.mark.parametrize("steps", [3, 5, 10])
@pytest.mark.parametrize("gram", [False, True])
def test_polar_express_matches_paper_schedule(steps, gram):
    G = random_matrix(12, 30, cond=100, seed=3)
    coeffs = [(a / 1.01, b / 1.01**3, c / 1.01**5) for a, b, c in PAPER[:-1]] + [PAPER[-1]]
    coeffs = coeffs[:steps] + [coeffs[-1]] * max(0, steps - len(coeffs))
    ours = orthogonalize(G, method="polar_express", steps=steps, dtype=torch.float64, gram=gram)
    assert np.allclose(ours.numpy(), quintic_reference(G.numpy(), coeffs, scale=1.01), atol=1e-9)


def test_polar_express_converges_to_svd_where_newton_schulz_plateaus():
    G = random_matrix(16, 40, cond=100, seed=4)
    exact = orthogonalize(G, method="svd")
    pe = orthogonalize(G, method="polar_express", steps=10, dtype=torch.float64)
    ns = orthogonalize(G, method="newton_schulz", steps=10, dtype=torch.float64)
    assert (pe - exact).abs().max() < 1e-6
    lo, hi = singular_value_band(ns)  # Jordan's quintic oscillates in a band around 1 (its post: ~[0.7, 1.2])
    assert 0.6 < lo < 0.95 and 1.05 < hi < 1.25


def test_gram_iteration_in_bf16_stays_in_the_direct_band_on_an_ill_conditioned_matrix():
    G = random_matrix(64, 256, cond=1e3, seed=5).float()
    direct = singular_value_band(orthogonalize(G, method="polar_express", dtype=torch.bfloat16, gram=False))
    gram = singular_value_band(orthogonalize(G, method="polar_express", dtype=torch.bfloat16, gram=True))
    assert gram[1] < direct[1] + 0.1 and gram[0] > 0.5 * direct[0]


def test_batched_equals_per_matrix_and_tall_is_transposed_wide():
    G = torch.randn(2, 3, 6, 10, dtype=torch.float64)
    out = orthogonalize(G, steps=5)
    for i in range(2):
        for j in range(3):
            assert torch.allclose(out[i, j], orthogonalize(G[i, j], steps=5), atol=1e-12)
    assert torch.allclose(orthogonalize(G.mT, steps=5), out.mT, atol=1e-12)


def test_output_keeps_dtype_and_shape_and_is_scale_invariant():
    G = torch.randn(7, 9)
    out = orthogonalize(G)
    assert out.dtype == G.dtype and out.shape == G.shape
    assert torch.allclose(
        orthogonalize(1e3 * G, dtype=torch.float32), orthogonalize(G, dtype=torch.float32), atol=1e-5
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "qr"}, "qr"),
        ({"steps": 0}, "steps"),
        ({"eps": -1.0}, "eps"),
        ({"dtype": torch.int32}, "dtype"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        orthogonalize(torch.randn(3, 4), **kwargs)


def test_vector_is_rejected():
    with pytest.raises(ValueError, match="2 dimensions"):
        orthogonalize(torch.randn(5))


@pytest.mark.parametrize("shape", [(512, 512), (400, 1000), (1000, 400)])
@pytest.mark.parametrize("gram", [False, True])
def test_blocked_symmetric_products_match_the_written_out_quintic(shape, gram):
    # rows >= 384 take the strip-wise symmetric products (400 rows: 3 uneven strips)
    G = random_matrix(*shape, cond=20, seed=6)
    ref = quintic_reference(G.numpy(), [JORDAN] * 5)
    ours64 = orthogonalize(G, method="newton_schulz", steps=5, dtype=torch.float64, gram=gram)
    assert np.allclose(ours64.numpy(), ref, atol=1e-10)
    ours32 = orthogonalize(G.float(), method="newton_schulz", steps=5, dtype=torch.float32, gram=gram)
    assert np.allclose(ours32.double().numpy(), ref, atol=2e-5)


def test_sym_mm_is_the_product_and_symmetric():
    from descentlab.optim.orthogonalize import _sym_mm

    X = torch.randn(450, 700, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    A = _sym_mm(X, X.mT)
    tol = 1e-12 * A.abs().max()
    assert torch.allclose(A, A.mT, rtol=0, atol=tol) and torch.allclose(A, X @ X.T, rtol=0, atol=tol)
    B = _sym_mm(A, A, A, beta=-0.5, alpha=2.0)
    tol = 1e-12 * B.abs().max()
    assert torch.allclose(B, B.mT, rtol=0, atol=tol)
    assert torch.allclose(B, -0.5 * A + 2.0 * A @ A, rtol=0, atol=tol)
