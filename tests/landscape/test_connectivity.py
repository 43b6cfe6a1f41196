from __future__ import annotations

import numpy as np
import pytest
import torch
from landscape_helpers import assert_unchanged, bn_mlp, snapshot
from torch import nn

from descentlab.landscape import connect, interpolate, linear_barrier
from descentlab.landscape.plots import plot_curves, plot_line, plot_plane, plot_spectral_density


class Ring(nn.Module):
    """Loss (||w||^2 - 1)^2: minima on the unit circle, a ridge (max 1) at the origin."""

    def __init__(self, w: tuple[float, float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (((self.w**2).sum() - 1) ** 2).expand(x.shape[0])


def mean_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs.mean()


DATA = (torch.zeros(8, 1), torch.zeros(8))
Y0 = 0.2
A, B = Ring((-((1 - Y0**2) ** 0.5), Y0)), Ring(((1 - Y0**2) ** 0.5, Y0))


def test_linear_barrier_equals_ridge_height():
    assert linear_barrier(A, B, mean_loss, DATA, points=51) == pytest.approx((Y0**2 - 1) ** 2, rel=1e-9)


@pytest.mark.parametrize("curve", ["bezier", "polychain"])
def test_connect_finds_low_loss_curve_around_ridge(curve):
    before = snapshot(A), snapshot(B)
    fitted = connect(A, B, mean_loss, DATA, curve=curve, bends=4, steps=600, lr=0.02, weight_decay=0.0)
    straight = interpolate(A, B, mean_loss, DATA, points=61).loss.max()
    along = fitted.loss_along(61)
    assert along.loss.max() < 0.1 * straight
    assert fitted.barrier() < 0.1 * linear_barrier(A, B, mean_loss, DATA)
    torch.testing.assert_close(fitted.point(0.0).w, A.w)
    torch.testing.assert_close(fitted.point(1.0).w, B.w)
    mid = fitted.point(0.5)
    assert float(mean_loss(mid(DATA[0]), DATA[1]).detach()) == pytest.approx(
        float(fitted.loss_along([0.5]).loss[0])
    )
    assert_unchanged(A, before[0])
    assert_unchanged(B, before[1])


def test_connect_bn_model_recomputes_statistics_and_leaves_models_untouched(tmp_path):
    a, b = bn_mlp(0), bn_mlp(1)
    before_a, before_b = snapshot(a), snapshot(b)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 6, generator=g), torch.randint(0, 4, (16,), generator=g)) for _ in range(3)]
    curve = connect(a, b, nn.CrossEntropyLoss(), batches, steps=10, lr=0.01)
    res = curve.loss_along(5)
    assert np.isfinite(res.loss).all() and res.accuracy is not None
    mid = curve.point(0.5)
    x = torch.cat([x for x, _ in batches[:4]])
    stats = mid[0](x)  # the recomputed running mean is the mean of the pre-BN activations on those batches
    torch.testing.assert_close(mid[1].running_mean, stats.mean(0).detach(), rtol=1e-4, atol=1e-5)
    assert_unchanged(a, before_a)
    assert_unchanged(b, before_b)
    paths = [
        plot_line(res, tmp_path / "curve.png"),
        plot_curves([interpolate(a, b, nn.CrossEntropyLoss(), batches, points=5), res], tmp_path / "c.png"),
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_connect_rejects_bad_arguments():
    for kwargs in ({"curve": "spline"}, {"bends": 2}, {"lr": 0.0}, {"steps": -1}, {"lr_schedule": "cosine"}):
        with pytest.raises(ValueError):
            connect(A, B, mean_loss, DATA, **kwargs)


def test_plots_write_png(tmp_path):
    from descentlab.landscape import hessian_spectral_density, plane

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    data = (torch.randn(20, 4), torch.randint(0, 3, (20,)))
    res = plane(model, nn.CrossEntropyLoss(), data, points=(5, 5))
    dens = hessian_spectral_density(model, nn.CrossEntropyLoss(), data, iterations=10)
    for path in (
        plot_plane(res, tmp_path / "p.png"),
        plot_plane(res, tmp_path / "s.png", kind="surface"),
        plot_spectral_density(dens, tmp_path / "d.png"),
    ):
        assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        plot_plane(res, tmp_path / "x.png", kind="heatmap")


def test_garipov_schedule_is_the_papers():
    """lr factor: 1 for the first half, linear to 0.01 at 90 %, then 0.01 (Garipov et al. 2018)."""
    from descentlab.landscape.connectivity import garipov_lr_factor

    assert garipov_lr_factor(0.0) == garipov_lr_factor(0.5) == 1.0
    assert garipov_lr_factor(0.7) == pytest.approx(1.0 - 0.99 * 0.5)
    assert garipov_lr_factor(0.9) == pytest.approx(0.01)
    assert garipov_lr_factor(0.95) == 0.01


def test_connect_schedule_sets_the_lr_the_optimizer_used(monkeypatch):
    """With the schedule the SGD steps use lr * factor(step / steps); 'constant' keeps lr."""
    import descentlab.landscape.connectivity as conn

    seen: dict[str, list[float]] = {"garipov": [], "constant": []}
    real_step = torch.optim.SGD.step

    for schedule in seen:

        def spy(self, *a, _s=schedule, **k):  # noqa: ANN001
            seen[_s].append(self.param_groups[0]["lr"])
            return real_step(self, *a, **k)

        monkeypatch.setattr(torch.optim.SGD, "step", spy)
        conn.connect(A, B, mean_loss, DATA, steps=10, lr=0.1, lr_schedule=schedule, weight_decay=0.0)
    assert seen["constant"] == [0.1] * 10
    assert seen["garipov"] == pytest.approx([0.1 * conn.garipov_lr_factor(i / 10) for i in range(10)])
