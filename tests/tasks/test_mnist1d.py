"""mnist1d: offline generation, label noise, the CNN's shapes and a quick learning check against the paper."""

from __future__ import annotations

import random

import numpy as np
import torch

from descentlab import tasks
from descentlab.tasks.mnist1d import ConvNet1d, mnist1d_data


def test_paper_split_and_global_rng_untouched() -> None:
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    (x, y), (xt, yt) = mnist1d_data(num_samples=600, seed=5)  # uncached size: really generates
    assert (random.random(), np.random.rand()) == before
    task = tasks.get("mnist1d_mlp")
    assert task.train_data[0].shape == (4000, 40) and task.val_data[0].shape == (1000, 40)
    assert task.train_data[0].dtype == torch.float32 and set(task.train_data[1].tolist()) == set(range(10))


def test_label_noise_only_touches_train_labels() -> None:
    clean = tasks.get("mnist1d_mlp", num_samples=1000)
    noisy = tasks.get("mnist1d_mlp", num_samples=1000, label_noise=0.2)
    assert torch.equal(clean.train_data[0], noisy.train_data[0])
    assert torch.equal(clean.val_data[1], noisy.val_data[1])
    changed = int((clean.train_data[1] != noisy.train_data[1]).sum())
    k = round(0.2 * 800)  # replaced labels; about 1/10 of them coincide with the true label
    assert 0.75 * k <= changed <= k


def test_cnn_shapes() -> None:
    net = ConvNet1d(25)
    assert net.linear.in_features == 125  # 40 -> 19 -> 10 -> 5 positions, 25 channels
    assert net(torch.randn(3, 40)).shape == (3, 10)
    mlp = tasks.get("mnist1d_mlp", width=16, depth=3).make_model(0)
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp) == 4


def test_mlp_with_adam_reaches_paper_accuracy() -> None:
    """The MNIST-1D paper reports ~68 % for its MLP; 800 Adam steps (about a second) give >= 60 %."""
    task = tasks.get("mnist1d_mlp")
    model = task.make_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=task.default_lr)
    stream = task.batches(task.default_batch_size, seed=0)
    for _ in range(800):
        opt.zero_grad()
        task.loss(model, next(stream)).backward()
        opt.step()
    assert task.evaluate(model)["accuracy"] >= 0.60


def test_disk_cache_returns_the_generated_arrays_and_survives_a_corrupt_file(tmp_path, monkeypatch) -> None:
    """The cached arrays equal a fresh generation bit for bit; a damaged file is regenerated; 0 turns it off."""
    import numpy as np

    from descentlab.tasks import mnist1d as m

    monkeypatch.setenv("DESCENTLAB_CACHE", str(tmp_path))
    m._generate.cache_clear()
    first = m._generate(100, 3)
    files = list(tmp_path.glob("mnist1d-*-n100-s3.npz"))
    assert len(files) == 1
    fresh = m._make(100, 3)
    m._generate.cache_clear()
    for a, b, c in zip(first, m._generate(100, 3), fresh):
        assert a.dtype == b.dtype == c.dtype and np.array_equal(a, b) and np.array_equal(a, c)
    files[0].write_bytes(b"not an npz")
    m._generate.cache_clear()
    for a, c in zip(m._generate(100, 3), fresh):
        assert np.array_equal(a, c)
    monkeypatch.setenv("DESCENTLAB_CACHE", "0")
    assert m.cache_dir() is None
    m._generate.cache_clear()
    m._generate(100, 4)
    assert not list(tmp_path.glob("*-s4.npz"))
    m._generate.cache_clear()
