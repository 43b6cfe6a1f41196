from __future__ import annotations

import numpy as np
import pytest
import torch
from landscape_helpers import _data64, assert_unchanged, bn_mlp, snapshot, tiny_mlp  # noqa: F401
from torch import nn

from descentlab.landscape import interpolate, line, plane, random_directions

CE = nn.CrossEntropyLoss()


def test_directions_gaussian_zero_mean_and_filter_normalized():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 36, 50), nn.BatchNorm1d(50))
    d1, d2 = random_directions(model, n=2, normalization="filter", ignore="biasbn", seed=3)
    for d in (d1, d2):
        for name, p in model.named_parameters():
            if p.ndim <= 1:
                assert torch.count_nonzero(d[name]) == 0, name
            else:
                wn = p.detach().reshape(p.shape[0], -1).norm(dim=1)
                dn = d[name].reshape(p.shape[0], -1).norm(dim=1)
                torch.testing.assert_close(dn, wn, rtol=1e-5, atol=1e-7)
        raw = torch.cat([d[n].reshape(-1) / model.get_parameter(n).detach().reshape(-1).norm()
                         for n, p in model.named_parameters() if p.ndim >= 2])  # fmt: skip
        # symmetric about zero: the mean is within 4 standard errors of 0 (loss-landscapes' U[0,1) fails this)
        assert abs(float(raw.mean())) < 4 * float(raw.std()) / raw.numel() ** 0.5
        assert (raw < 0).float().mean() == pytest.approx(0.5, abs=0.02)
    # independent directions: nearly orthogonal in high dimension
    v1 = torch.cat([t.reshape(-1) for t in d1.values()])
    v2 = torch.cat([t.reshape(-1) for t in d2.values()])
    assert abs(float(v1 @ v2 / (v1.norm() * v2.norm()))) < 0.1
    # seeded
    again = random_directions(model, n=1, seed=3)[0]
    assert all(torch.equal(again[k], d1[k]) for k in d1)


def test_layer_and_none_normalization():
    model = tiny_mlp(dtype=torch.float32)
    (layer,) = random_directions(model, 1, normalization="layer", ignore=None, seed=1)
    for name, p in model.named_parameters():
        assert float(layer[name].norm()) == pytest.approx(float(p.detach().norm()), rel=1e-5)
    (raw,) = random_directions(model, 1, normalization="none", ignore=None, seed=1)
    assert float(torch.cat([t.reshape(-1) for t in raw.values()]).std()) == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"normalization": "unit"}, {"ignore": "bias"}])
def test_directions_reject_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        random_directions(tiny_mlp(), **kwargs)


def test_plane_center_equals_model_loss_and_vmap_equals_loop(data64):
    model = tiny_mlp()
    x, y = data64
    res = plane(model, CE, (x, y), points=(7, 5), span=((-1, 1), (-0.5, 0.5)))
    assert res.loss.shape == (7, 5) and res.accuracy.shape == (7, 5)
    with torch.no_grad():
        out = model(x)
    assert res.loss[3, 2] == pytest.approx(float(CE(out, y)), rel=1e-12)
    assert res.accuracy[3, 2] == pytest.approx(float((out.argmax(1) == y).double().mean()))
    loop = plane(model, CE, (x, y), points=(7, 5), span=((-1, 1), (-0.5, 0.5)), vectorize=False)
    np.testing.assert_allclose(res.loss, loop.loss, rtol=1e-10)
    np.testing.assert_allclose(res.accuracy, loop.accuracy)
    tiny = plane(model, CE, (x, y), points=(7, 5), span=((-1, 1), (-0.5, 0.5)), memory_budget=1)
    np.testing.assert_allclose(tiny.loss, loop.loss, rtol=1e-10)  # one point per chunk
    # the plane is the plain formula L(w + a d1 + b d2)
    d1, d2 = res.directions
    a, b = res.alphas[6], res.betas[0]
    moved = tiny_mlp()
    with torch.no_grad():
        for n, p in moved.named_parameters():
            p.add_(a * d1[n] + b * d2[n])
        assert res.loss[6, 0] == pytest.approx(float(CE(moved(x), y)), rel=1e-10)
    assert abs(res.cosine) < 0.5


def test_line_batches_and_other_model(data64):
    model, other = tiny_mlp(0), tiny_mlp(1)
    x, y = data64
    whole = line(model, CE, (x, y), direction=other, span=(0, 1), points=3)
    split = line(model, CE, [(x[:40], y[:40]), (x[40:], y[40:])], direction=other, span=(0, 1), points=3)
    np.testing.assert_allclose(whole.loss, split.loss, rtol=1e-10)
    with torch.no_grad():
        assert whole.loss[0] == pytest.approx(float(CE(model(x), y)))
        assert whole.loss[-1] == pytest.approx(float(CE(other(x), y)))


def test_interpolate_moves_buffers_and_leaves_models_untouched():
    a, b = bn_mlp(0), bn_mlp(1)
    a.train()
    before_a, before_b = snapshot(a), snapshot(b)
    x, y = torch.randn(32, 6), torch.randint(0, 4, (32,))
    res = interpolate(a, b, CE, (x, y), points=5)
    loop = interpolate(a, b, CE, (x, y), points=5, vectorize=False)
    np.testing.assert_allclose(res.loss, loop.loss, rtol=1e-5)
    assert_unchanged(a, before_a)
    assert_unchanged(b, before_b)
    assert a.training and all(m.training for m in a.modules())
    with torch.no_grad():
        a.eval(), b.eval()
        assert res.loss[0] == pytest.approx(float(CE(a(x), y)), rel=1e-5)
        assert res.loss[-1] == pytest.approx(float(CE(b(x), y)), rel=1e-5)
        mid = bn_mlp(0).eval()  # halfway: parameters AND running statistics averaged
        for t, u in zip(mid.state_dict().values(), b.state_dict().values()):
            if t.dtype.is_floating_point:
                t.copy_(0.5 * (t + u))
        assert res.loss[2] == pytest.approx(float(CE(mid(x), y)), rel=1e-5)
    plane(a, CE, (x, y), points=(3, 3))
    assert_unchanged(a, before_a)


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 4)

    def forward(self, x):
        out = self.lin(x)
        if float(out.sum()) > 1e9:  # data-dependent control flow: vmap cannot take it
            out = -out
        return out


def test_loop_fallback_for_models_vmap_cannot_take():
    torch.manual_seed(0)
    model = Branchy()
    x, y = torch.randn(16, 6), torch.randint(0, 4, (16,))
    with pytest.warns(UserWarning, match="vmap failed"):
        res = line(model, CE, (x, y), points=5, normalization="layer", ignore=None)
    ref = line(model, CE, (x, y), points=5, normalization="layer", ignore=None, vectorize=False)
    np.testing.assert_allclose(res.loss, ref.loss)
    with pytest.raises(RuntimeError):
        line(model, CE, (x, y), points=5, vectorize=True)


def test_regression_outputs_have_no_accuracy_and_bad_inputs_raise(data64):
    model = nn.Linear(6, 1).double()
    x, _ = data64
    res = line(model, nn.MSELoss(), (x, x[:, :1]), points=3, ignore=None)
    assert res.accuracy is None
    with pytest.raises(TypeError):
        line(model, nn.MSELoss(), 3)
    with pytest.raises(ValueError):
        line(model, nn.MSELoss(), (x, x[:, :1]), span=(1, -1))
    with pytest.raises(ValueError):
        plane(model, nn.MSELoss(), (x, x[:, :1]), points=(1, 5))
    with pytest.raises(TypeError):
        line("model", nn.MSELoss(), (x, x))
