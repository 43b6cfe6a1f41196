"""charlm: the corpus, the encoding, next-character targets and the causal GPT."""

from __future__ import annotations

import torch

from descentlab import tasks
from descentlab.tasks.charlm import VOCAB, corpus, decode, encode


def test_corpus_is_large_english_text() -> None:
    text = corpus()
    assert len(text) >= 200_000
    assert text.count(" the ") > 1000
    assert len(VOCAB) == 96
    sample = "The quick brown fox: x = [1, 2]\n"
    assert decode(encode(sample)) == sample
    assert decode(encode("a\u2014b\u201cc\u201d\u00e9")) == 'a-b"c"?'


def test_split_and_windows() -> None:
    task = tasks.get("charlm", context=16)
    n_tr, n_va = len(task.train_data[0]), len(task.val_data[0])
    assert abs(n_tr / (n_tr + n_va) - 0.9) < 1e-4
    x, y = next(task.batches(5, seed=0))
    assert x.shape == y.shape == (5, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])
    text = decode(task.train_data[0])
    for row_x, row_y in zip(x, y):
        assert decode(torch.cat([row_x, row_y[-1:]])) in text


def test_model_is_causal_and_evaluate_uses_fixed_windows() -> None:
    task = tasks.get("charlm", width=32, heads=2, depth=2, context=16)
    model = task.make_model(0).eval()
    x, _ = next(task.batches(2, seed=0))
    out = model(x)
    assert out.shape == (2, 16, 96)
    x2 = x.clone()
    x2[:, 10:] = 0
    assert torch.allclose(model(x2)[:, :10], out[:, :10], atol=1e-6)
    assert task.evaluate(model) == task.evaluate(model)
    wx, _ = task._fixed_windows(task.val_data[0])
    assert wx.numel() == 48 * 16
