"""Issue 21: every evaluation path of the loss landscape gives the plain loop's numbers; bf16 is opt-in."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from landscape_helpers import assert_unchanged, snapshot
from torch import nn

import descentlab.hardware
from descentlab.hardware import Hardware
from descentlab.landscape import interpolate, line, plane
from descentlab.landscape.projections import FlatParams, buffers_of, evaluate_points

CE = nn.CrossEntropyLoss()
KW = {"points": (4, 3), "span": ((-1, 1), (-0.5, 0.7)), "ignore": None}


def data(samples: int, inputs: int, classes: int = 5, dtype=torch.float64, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(samples, inputs, generator=g, dtype=dtype), torch.randint(
        0, classes, (samples,), generator=g
    )


def mlp(*layers: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(*layers).double()


# 2400 samples x 64 features in float64 is > 1 MiB of activations per point: the point-by-point paths.
MLPS = {
    "relu-tanh": lambda: mlp(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 5)),
    "gelu-nobias": lambda: mlp(
        nn.Linear(20, 64),
        nn.GELU(),
        nn.Linear(64, 64, bias=False),
        nn.SiLU(),
        nn.Identity(),
        nn.Linear(64, 5),
    ),  # fmt: skip
    "one-layer": lambda: mlp(nn.Linear(20, 5)),
}


@pytest.mark.parametrize("name", sorted(MLPS))
@pytest.mark.parametrize(
    "criterion",
    [
        CE,
        nn.CrossEntropyLoss(label_smoothing=0.1, weight=torch.rand(5, dtype=torch.float64)),
        nn.CrossEntropyLoss(reduction="sum"),
        nn.MultiMarginLoss(),
    ],  # fmt: skip
    ids=["ce", "ce-weighted-smoothed", "ce-sum", "margin"],
)
def test_feature_major_mlp_equals_the_plain_loop(name, criterion):
    model = MLPS[name]()
    model[0].bias.requires_grad_(False)  # a frozen tensor is a constant, not a direction
    x, y = data(30000 if name == "one-layer" else 2400, 20)  # > 1 MiB of activations per point
    before = snapshot(model)
    fast = plane(model, criterion, (x, y), **KW)
    assert fast.evaluation.startswith("feature-major MLP")
    ref = plane(model, criterion, (x, y), vectorize=False, **KW)
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-12)
    np.testing.assert_array_equal(fast.accuracy, ref.accuracy)
    batches = [(x[:1900], y[:1900]), (x[1900:], y[1900:])]
    split, split_ref = (
        plane(model, criterion, batches, **KW),
        plane(model, criterion, batches, vectorize=False, **KW),
    )
    np.testing.assert_allclose(split.loss, split_ref.loss, rtol=1e-12)
    assert_unchanged(model, before)


def test_feature_major_regression_line_and_many_directions():
    model = MLPS["relu-tanh"]()
    x, _ = data(2400, 20)
    target = torch.zeros(2400, 5, dtype=torch.float64)
    fast = line(model, nn.MSELoss(), (x, target), points=4)
    ref = line(model, nn.MSELoss(), (x, target), points=4, vectorize=False)
    assert fast.evaluation.startswith("feature-major MLP") and fast.accuracy is None
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-12)
    # K = 12 directions on 20 inputs: the first layer is one more product instead of 13 tables
    flat = FlatParams(model)
    dirs = torch.randn(12, flat.numel, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.01
    info = {}
    args = (model, nn.MSELoss(), [(x, target)], flat.vector, dirs, torch.eye(12), flat, buffers_of(model))
    ours = evaluate_points(*args, info=info)[0]
    assert info["path"] == "feature-major MLP, point by point"
    np.testing.assert_allclose(ours, evaluate_points(*args, vectorize=False)[0], rtol=1e-12)


def test_tied_and_nan_scores_follow_argmax():
    model = MLPS["relu-tanh"]()
    with (
        torch.no_grad()
    ):  # a zero head: filter-normalized directions are zero there too, every score ties at 0
        model[4].weight.zero_()
        model[4].bias.zero_()
    x, y = data(2400, 20)
    fast = plane(model, CE, (x, y), **KW)
    ref = plane(model, CE, (x, y), vectorize=False, **KW)
    np.testing.assert_array_equal(fast.accuracy, ref.accuracy)
    assert np.allclose(fast.accuracy, float((y == 0).double().mean()))  # argmax takes the first of the ties
    with torch.no_grad():
        model[4].weight.normal_()
        model[4].bias[2] = float("nan")
    fast = plane(model, CE, (x, y), **KW)
    ref = plane(model, CE, (x, y), vectorize=False, **KW)
    np.testing.assert_array_equal(fast.accuracy, ref.accuracy)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 8, 5, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8 * 40, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x[:, None]))).flatten(1))


def cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = SmallCNN().double()
    with torch.no_grad():
        model.train()(torch.randn(256, 40, dtype=torch.float64) * 2 + 1)  # non-trivial running statistics
    return model.eval()


def test_private_copy_path_equals_the_plain_loop_and_leaves_the_model_alone():
    model, other = cnn(0), cnn(1)
    x, y = data(1200, 40)
    before = snapshot(model)
    fast = plane(model, CE, (x, y), **KW)
    assert fast.evaluation.startswith("private copy")
    ref = plane(model, CE, (x, y), vectorize=False, **KW)
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-12)
    np.testing.assert_array_equal(fast.accuracy, ref.accuracy)
    moving = interpolate(model, other, CE, (x, y), points=4)  # BatchNorm statistics move with the weights
    assert moving.evaluation.startswith("private copy")
    np.testing.assert_allclose(moving.loss, interpolate(model, other, CE, (x, y), points=4, vectorize=False).loss,
                               rtol=1e-12)  # fmt: skip
    assert_unchanged(model, before)
    hooked = cnn(0)
    hooked.conv.register_forward_hook(lambda m, i, o: o * 2)
    assert plane(hooked, CE, (x, y), **KW).evaluation.startswith("plain loop")


@pytest.fixture
def hardware(monkeypatch):
    def use(**spec):
        hw = Hardware.fake(**spec)
        monkeypatch.setattr(descentlab.hardware, "current", lambda: hw)
        return hw

    return use


def test_bf16_is_opt_in_close_to_fp32_and_warns_where_emulated(hardware):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    x, y = data(64, 20, dtype=torch.float32)
    fp32 = plane(model, CE, (x, y), **KW)
    hardware()  # AVX2 only: bf16 is emulated, slower than fp32 -> a warning
    with pytest.warns(UserWarning, match="without native bf16"):
        bf16 = plane(model, CE, (x, y), precision="bf16", **KW)
    np.testing.assert_allclose(bf16.loss, fp32.loss, rtol=2e-2)
    assert not np.array_equal(bf16.loss, fp32.loss)  # it really ran in bf16
    hardware(amx=True, avx512_bf16=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        line(model, CE, (x, y), points=3, precision="bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        plane(model, CE, (x, y), precision="fp16", **KW)


@pytest.mark.parametrize("vectorize", [None, False])
def test_bf16_on_every_path_stays_close(vectorize, recwarn):
    for model, (x, y) in ((MLPS["relu-tanh"]().float(), data(4800, 20, dtype=torch.float32)),
                          (cnn(0).float(), data(1200, 40, dtype=torch.float32))):  # fmt: skip
        fp32 = plane(model, CE, (x, y), points=(2, 2))
        bf16 = plane(model, CE, (x, y), points=(2, 2), precision="bf16", vectorize=vectorize)
        np.testing.assert_allclose(bf16.loss, fp32.loss, rtol=3e-2)


def test_points_split_over_threads_give_the_same_numbers(monkeypatch):
    from descentlab.landscape import projections

    model = MLPS["relu-tanh"]()
    x, y = data(2400, 20)
    one = plane(model, CE, (x, y), points=(5, 7))
    monkeypatch.setattr(projections, "_point_workers", lambda n: 3)
    threads = torch.get_num_threads()
    three = plane(model, CE, (x, y), points=(5, 7))
    assert three.evaluation.endswith("3 threads of points") and torch.get_num_threads() == threads
    np.testing.assert_array_equal(three.loss, one.loss)
    np.testing.assert_array_equal(three.accuracy, one.accuracy)
