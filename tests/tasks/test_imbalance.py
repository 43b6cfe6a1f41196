"""imbalance: Zipf class counts, frequency groups and per-group losses."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from descentlab import tasks
from descentlab.tasks.imbalance import frequency_groups, zipf_counts


def test_zipf_counts_follow_one_over_k() -> None:
    task = tasks.get("imbalance")
    counts = task.class_counts
    assert len(counts) == 128
    assert torch.equal(torch.bincount(task.train_data[1], minlength=128), counts)
    k = torch.arange(1, 129, dtype=torch.float64)
    expected = 8192 / k / (1 / k).sum()
    assert (counts.double() - expected).abs().max() <= 0.5 + 1e-9
    assert (counts[:-1] >= counts[1:]).all()
    assert zipf_counts(5, 10, alpha=0.0).tolist() == [2, 2, 2, 2, 2]


def test_frequency_groups_hold_about_ten_percent_each() -> None:
    task = tasks.get("imbalance")
    groups, counts = task.class_group, task.class_counts
    assert (groups[:-1] <= groups[1:]).all()  # classes are numbered by decreasing frequency
    share = torch.zeros(10, dtype=torch.float64).index_add_(0, groups, counts.double()) / counts.sum()
    assert set(groups.tolist()) == set(range(10))
    assert share.max() < 0.2 and share.min() > 0.05
    assert frequency_groups(torch.tensor([1, 1, 1, 1]), 2).tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_loss_by_group_matches_a_plain_loop(model: str) -> None:
    task = tasks.get("imbalance", num_classes=30, num_samples=2000, model=model)
    net = task.make_model(0)
    got = task.loss_by_group(net)
    x, y = task.train_data
    with torch.no_grad():
        for j, v in got.items():
            mask = task.class_group[y] == j
            assert v == pytest.approx(float(F.cross_entropy(net(x[mask]), y[mask])), rel=1e-5)
    res = task.evaluate(net)
    assert all(f"train_loss_g{j}" in res for j in got)


def test_bad_model() -> None:
    with pytest.raises(ValueError, match="model"):
        tasks.get("imbalance", model="resnet")
