"""Character-level language modelling with a small GPT on English prose that ships with Python.

Text: the Python Language Reference / Library Reference topics bundled with the standard library in
``pydoc_data.topics`` (the source of ``help('if')`` etc.; ~460 KB of English for CPython 3.11), topics joined in
sorted order. The text depends on the Python version, so the data are deterministic per interpreter version.
Characters are mapped to a fixed 96-symbol vocabulary (newline + printable ASCII); a few non-ASCII punctuation
marks become their ASCII look-alikes and anything else becomes ``?``. The first 90 % is train, the rest validation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.tasks.base import Batch, Criterion, SeededStream, Task, _landscape_samples
from descentlab.tasks.modular import Transformer

VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
_ASCII = {"\t": " ", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": ".", "°": "o", "ß": "s"}


@functools.lru_cache(maxsize=1)
def corpus() -> str:
    """The raw English text: ``pydoc_data.topics.topics`` values in sorted key order, separated by blank lines."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def encode(text: str) -> Tensor:
    """Text -> int64 tokens over :data:`VOCAB` (see the module docstring for the mapping of other characters)."""
    index = {c: i for i, c in enumerate(VOCAB)}
    unknown = index["?"]
    return torch.tensor([index.get(_ASCII.get(c, c), unknown) for c in text], dtype=torch.int64)


def decode(tokens: Tensor) -> str:
    """Tokens -> text."""
    return "".join(VOCAB[int(t)] for t in tokens)


@functools.lru_cache(maxsize=1)
def _tokens() -> Tensor:
    return encode(corpus())


def windows(tokens: Tensor, starts: Tensor, context: int) -> Batch:
    """Inputs ``tokens[s : s + context]`` and next-character targets ``tokens[s + 1 : s + context + 1]``."""
    idx = starts.to(tokens.device)[:, None] + torch.arange(context + 1, device=tokens.device)
    w = tokens[idx]
    return w[:, :-1], w[:, 1:]


class WindowStream(SeededStream):
    """Endless stream of random training windows; batch ``k`` depends only on ``(seed, k)`` (state = step count)."""

    def __init__(self, tokens: Tensor, batch_size: int, context: int, seed: int = 0):
        super().__init__(batch_size, seed)
        self.tokens, self.context = tokens, context

    def draw(self, generator: torch.Generator) -> Batch:
        """``batch_size`` windows starting at uniformly random positions."""
        starts = torch.randint(0, len(self.tokens) - self.context, (self.batch_size,), generator=generator)
        return windows(self.tokens, starts, self.context)


def lm_criterion(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy over every position: ``logits`` (..., vocab), ``targets`` (...)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@dataclass
class CharLMTask(Task):
    """Next-character prediction; ``train_data``/``val_data`` are ``(tokens,)`` 1-D int64 tensors."""

    context: int = 64
    eval_windows: int = 48

    def batches(self, batch_size: int | None = None, seed: int = 0) -> WindowStream:  # type: ignore[override]
        """Random training windows, resumable."""
        return WindowStream(self.train_data[0], self.default_batch_size if batch_size is None else batch_size, self.context, seed)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Mean next-character cross-entropy over all positions of the batch."""
        x, y = batch[0], batch[1]
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _fixed_windows(self, tokens: Tensor, count: int | None = None) -> Batch:
        span = len(tokens) - self.context - 1
        starts = torch.linspace(0, span, self.eval_windows if count is None else count).long()
        return windows(tokens, starts, self.context)

    def landscape_problem(
        self, model: nn.Module, samples: int | None = None
    ) -> tuple[nn.Module, Criterion, tuple[Tensor, Tensor]]:
        """Next-character cross-entropy on ``samples`` evenly spaced training windows (default ``eval_windows``,
        the windows behind ``train_loss``) for the landscape tools."""
        count = self.eval_windows if samples is None else _landscape_samples(samples)
        x, y = self._fixed_windows(self.train_data[0], count)
        return model, lm_criterion, (x, y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``loss``/``accuracy`` (next character) on fixed evenly spaced validation windows; ``train_`` likewise."""
        was_training = model.training
        model.eval()
        try:
            out: dict[str, float] = {}
            for prefix, data in (("", self.val_data), ("train_", self.train_data)):
                x, y = self._fixed_windows(data[0])
                logits = model(x.to(next(model.parameters()).device))
                y = y.to(logits.device)
                out[prefix + "loss"] = float(
                    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
                )
                out[prefix + "accuracy"] = float((logits.argmax(-1) == y).float().mean())
        finally:
            model.train(was_training)
        return out


def make_charlm(
    depth: int = 2,
    width: int = 128,
    heads: int = 4,
    context: int = 64,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> CharLMTask:
    """A small character-level GPT on the Python reference text (see the module docstring).

    ``seed`` only matters for the batch stream (``batches(seed=...)``); the split is by position.
    """
    for nm, v in (("depth", depth), ("width", width), ("heads", heads), ("context", context)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"charlm: {nm} must be a positive integer, got {v!r}")
    if width % heads:
        raise ValueError(f"charlm: width {width} must be divisible by heads {heads}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"charlm: val_fraction must be in (0, 1), got {val_fraction!r}")
    tokens = _tokens()
    cut = int(len(tokens) * (1 - val_fraction))
    longest = min(cut, len(tokens) - cut) - 2  # a window plus its next character must fit in train and validation
    if context > longest:
        raise ValueError(
            f"charlm: context {context} is longer than the text allows: at most {longest} characters with "
            f"val_fraction={val_fraction:g} ({len(tokens)} characters in all)"
        )
    v = len(VOCAB)
    return CharLMTask(
        name="charlm",
        train_data=(tokens[:cut].clone(),),
        val_data=(tokens[cut:].clone(),),
        model_factory=lambda s: Transformer(v, v, context, width, heads, depth, 4 * width),
        description="character-level GPT on the Python reference text",
        kind="classification",
        default_batch_size=32,
        default_lr=1e-3,
        default_steps=2000,
        default_eval_every=100,
        config={
            "depth": depth,
            "width": width,
            "heads": heads,
            "context": context,
            "val_fraction": val_fraction,
            "seed": seed,
        },
        context=context,
    )


from descentlab.tasks import register  # noqa: E402

register("charlm", make_charlm, "character-level GPT on English prose shipped with Python (pydoc topics)")
