"""Character-level language modelling with a small GPT on English prose that ships with Python.

Text: the Python Language Reference / Library Reference topics bundled with the standard library in
``pydoc_data.topics`` (the source of ``help('if')`` etc.; ~460 KB of English for CPython 3.11), topics joined in
sorted order. The text depends on the Python version, so the data are deterministic per interpreter version.
Characters are mapped to a fixed 96-symbol vocabulary (newline + printable ASCII); a few non-ASCII punctuation
marks become their ASCII look-alikes and anything else becomes ``?``. The first 90 % is train, the rest validation.

The model is :class:`~descentlab.tasks.modular.Transformer`; the NanoGPT speedrun's architecture changes are options
of the same model (:class:`GPT`, chosen by ``make_charlm(rotary=..., relu2=..., qk_norm=..., zero_init=...,
softcap=...)``; all off -> the plain Transformer, unchanged). :func:`gpt_family` scales it by one knob (the width).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.tasks.base import Batch, Criterion, SeededStream, Task, _landscape_samples
from descentlab.tasks.modular import Transformer, attention

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
        return WindowStream(
            self.train_data[0],
            self.default_batch_size if batch_size is None else batch_size,
            self.context,
            seed,
        )

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


def rotate(x: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding of ``x`` ``[..., T, d]`` (d even): the pair ``(x_i, x_{i + d/2})`` at position
    ``t`` is rotated by the angle ``t * base^(-2i/d)`` (Su et al. 2021, "RoFormer"). Norms are kept, and
    ``<rotate(q)_m, rotate(k)_n>`` depends on the positions only through ``m - n``."""
    t, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"rotary embeddings need an even head dimension, got {d}")
    half = d // 2
    freq = base ** (-torch.arange(half, dtype=torch.float32, device=x.device) * 2 / d)
    angle = torch.arange(t, dtype=torch.float32, device=x.device)[:, None] * freq  # [T, d/2]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def rms_normalize(x: Tensor, eps: float = 1e-6) -> Tensor:
    """``x / sqrt(mean(x^2) + eps)`` over the last dimension (no gain): QK-norm's map."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class ReLU2(nn.Module):
    """``relu(x)^2`` (So et al. 2021, "Primer"): the speedrun's MLP activation."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x).square()


class GPT(Transformer):
    """charlm's :class:`Transformer` with the NanoGPT speedrun's architecture changes as options (same modules,
    same initialization draws; every option off gives exactly the Transformer's forward):

    - ``rotary``: rotary embeddings on queries and keys instead of the learned position table (``pos`` removed);
    - ``relu2``: ``relu(x)^2`` instead of GELU in the MLPs;
    - ``qk_norm``: queries and keys RMS-normalized per head (no gain) before the scaled dot product;
    - ``zero_init``: the attention and MLP output projections and the (untied) head start at zero, so every block is
      the identity and the logits are 0 at initialization;
    - ``softcap`` > 0: logits ``softcap * tanh(logits / softcap)`` (Gemma 2), bounded by ``softcap``.
    """

    def __init__(
        self,
        vocab: int,
        context: int,
        width: int = 128,
        heads: int = 4,
        depth: int = 2,
        mlp: int | None = None,
        *,
        rotary: bool = False,
        relu2: bool = False,
        qk_norm: bool = False,
        zero_init: bool = False,
        softcap: float = 0.0,
    ):
        super().__init__(vocab, vocab, context, width, heads, depth, mlp)
        if softcap < 0:
            raise ValueError(f"softcap must be >= 0 (0 = off), got {softcap!r}")
        if rotary and (width // heads) % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {width // heads}")
        self.rotary, self.relu2, self.qk_norm = bool(rotary), bool(relu2), bool(qk_norm)
        self.zero_init, self.softcap = bool(zero_init), float(softcap)
        if rotary:
            del self.pos
            self.pos = None
        for blk in self.blocks:
            if relu2:
                blk.mlp[1] = ReLU2()
            if zero_init:
                for lin in (blk.proj, blk.mlp[2]):
                    nn.init.zeros_(lin.weight)
                    nn.init.zeros_(lin.bias)
        if zero_init:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def block(self, blk: nn.Module, h: Tensor) -> Tensor:
        """One pre-LayerNorm block ``[B, T, D] -> [B, T, D]`` with this model's options."""
        b, t, d = h.shape
        q, k, v = (
            z.reshape(b, t, blk.heads, d // blk.heads).transpose(1, 2)
            for z in blk.qkv(blk.ln1(h)).split(d, -1)
        )
        if self.qk_norm:
            q, k = rms_normalize(q), rms_normalize(k)
        if self.rotary:
            q, k = rotate(q), rotate(k)
        h = h + blk.proj(attention(q, k, v, causal=True).transpose(1, 2).reshape(b, t, d))
        return h + blk.mlp(blk.ln2(h))

    def forward(self, tokens: Tensor) -> Tensor:
        t = tokens.shape[1]
        if t > self.context:
            raise ValueError(f"sequence length {t} exceeds the context {self.context}")
        h = self.tok(tokens)
        if self.pos is not None:
            h = h + self.pos(torch.arange(t, device=tokens.device))
        for blk in self.blocks:
            h = self.block(blk, h)
        logits = self.head(self.ln(h))
        if self.softcap > 0:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


GPT_OPTIONS = ("rotary", "relu2", "qk_norm", "zero_init", "softcap")
"""The speedrun's architecture options of :func:`make_charlm` (booleans; ``softcap`` a float, 0 = off)."""


def gpt_family(width: int, head_dim: int = 16, depth: int = 2, context: int = 64) -> dict[str, int]:
    """The charlm GPT family's settings at one size: the knob is ``width``; ``heads = width // head_dim`` (head
    dimension fixed), ``depth`` and ``context`` fixed. Parameters grow ~ 12 depth width^2 + 2 * 96 width."""
    if width % head_dim:
        raise ValueError(f"width {width} must be a multiple of head_dim {head_dim}")
    return {"width": width, "heads": width // head_dim, "depth": depth, "context": context}


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_charlm(
    depth: int = 2,
    width: int = 128,
    heads: int = 4,
    context: int = 64,
    val_fraction: float = 0.1,
    seed: int = 0,
    rotary: bool = False,
    relu2: bool = False,
    qk_norm: bool = False,
    zero_init: bool = False,
    softcap: float = 0.0,
    eval_windows: int = 48,
) -> CharLMTask:
    """A small character-level GPT on the Python reference text (see the module docstring).

    ``seed`` only matters for the batch stream (``batches(seed=...)``); the split is by position. The speedrun
    options (``rotary``, ``relu2``, ``qk_norm``, ``zero_init``, ``softcap``; see :class:`GPT`) are off by default:
    then the model is the plain :class:`Transformer`. ``eval_windows``: validation (and training) windows per
    evaluation.
    """
    for nm, v in (("depth", depth), ("width", width), ("heads", heads), ("context", context)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"charlm: {nm} must be a positive integer, got {v!r}")
    if width % heads:
        raise ValueError(f"charlm: width {width} must be divisible by heads {heads}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"charlm: val_fraction must be in (0, 1), got {val_fraction!r}")
    if isinstance(eval_windows, bool) or not isinstance(eval_windows, int) or eval_windows < 1:
        raise ValueError(f"charlm: eval_windows must be a positive integer, got {eval_windows!r}")
    options = {"rotary": rotary, "relu2": relu2, "qk_norm": qk_norm, "zero_init": zero_init}
    for nm, flag in options.items():
        if not isinstance(flag, bool):
            raise ValueError(f"charlm: {nm} must be True or False, got {flag!r}")
    if isinstance(softcap, bool) or not isinstance(softcap, (int, float)) or not 0 <= softcap < float("inf"):
        raise ValueError(f"charlm: softcap must be a finite number >= 0 (0 = off), got {softcap!r}")
    if rotary and (width // heads) % 2:
        raise ValueError(f"charlm: rotary embeddings need an even head dimension, got {width // heads}")
    if softcap:
        options["softcap"] = float(softcap)
    options = {
        k: v for k, v in options.items() if v
    }  # only the options that are on (defaults: the plain model)
    tokens = _tokens()
    cut = int(len(tokens) * (1 - val_fraction))
    # a window plus its next character must fit in train and validation
    longest = min(cut, len(tokens) - cut) - 2
    if context > longest:
        raise ValueError(
            f"charlm: context {context} is longer than the text allows: at most {longest} characters with "
            f"val_fraction={val_fraction:g} ({len(tokens)} characters in all)"
        )
    v = len(VOCAB)
    extra: dict = dict(options)
    if eval_windows != 48:
        extra["eval_windows"] = eval_windows

    def factory(s: int) -> nn.Module:
        if options:
            return GPT(v, context, width, heads, depth, 4 * width, **options)
        return Transformer(v, v, context, width, heads, depth, 4 * width)

    return CharLMTask(
        name="charlm",
        train_data=(tokens[:cut].clone(),),
        val_data=(tokens[cut:].clone(),),
        model_factory=factory,
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
            **extra,
        },
        context=context,
        eval_windows=eval_windows,
    )


from descentlab.tasks import register  # noqa: E402

register("charlm", make_charlm, "character-level GPT on English prose shipped with Python (pydoc topics)")
