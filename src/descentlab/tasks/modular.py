"""Modular arithmetic ``a op b mod p`` (Power et al. 2022, "Grokking"), the grokking workload; and the small causal
transformer it (and ``charlm``) uses.

Every pair ``(a, b)`` with ``a, b in [0, p)`` (``b != 0`` for ``/``, where ``a / b = a * b^(p-2) mod p``, i.e. ``a``
times the inverse of ``b``) becomes the sequence ``[a, op, b, =]`` over a vocabulary of ``p + 2`` tokens
(``op = p``, ``= = p + 1``); the target is the result. A seeded permutation puts ``train_fraction`` of the pairs in
the training set and the rest in the validation set.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.tasks.base import Task, seeded_generator

OPS = ("+", "-", "*", "/")


SHORT_CONTEXT = 8


def _batched(x: Tensor) -> bool:
    """Whether ``x`` is a vmap-batched tensor (a population's forward): torch's fused attention kernel has no
    batching rule (vmap would loop over the members), the explicit products batch."""
    check = getattr(torch._C._functorch, "is_batchedtensor", None)
    return bool(check(x)) if check is not None else False


def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Softmax attention ``[B, H, Tq, d] x [B, H, T, d] -> [B, H, Tq, d]`` (causal: ``Tq == T``, lower triangle).

    Sequences of at most ``SHORT_CONTEXT`` keys are computed with explicit products: on the CPU, torch's fused
    ``scaled_dot_product_attention`` kernel is built for long sequences and costs ~4x more forward+backward at
    ``T = 4`` (the modular task), ~25 % of a grokking step. Longer sequences use the fused kernel. Both are exact
    softmax attention and twice differentiable (Hessian-vector products go through either).
    """
    t = k.shape[-2]
    if t > SHORT_CONTEXT and not _batched(q):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    scale = q.shape[-1] ** -0.5
    if (
        q.shape[-2] == 1 and not causal
    ):  # one query (the read-out position): broadcast products beat tiny matmuls
        w = ((q * k).sum(-1, keepdim=True) * scale).softmax(-2)  # [B, H, T, 1]
        return (w * v).sum(-2, keepdim=True)
    s = (q @ k.transpose(-2, -1)) * scale
    if causal:
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    return s.softmax(-1) @ v


class Block(nn.Module):
    """Pre-LayerNorm transformer block: causal multi-head self-attention and a GELU MLP, both residual."""

    def __init__(self, width: int, heads: int, mlp: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp), nn.GELU(), nn.Linear(mlp, width))

    def forward(self, h: Tensor, last_only: bool = False) -> Tensor:
        """``[B, T, D] -> [B, T, D]``; with ``last_only`` just the last position, ``[B, 1, D]`` (the same values,
        computed with one query instead of ``T``: the last position may attend to every key)."""
        b, t, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(d, dim=-1)
        if last_only:
            q, h = q[:, -1:], h[:, -1:]
        q, k, v = (z.reshape(b, z.shape[1], self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = attention(q, k, v, causal=not last_only)
        h = h + self.proj(att.transpose(1, 2).reshape(b, h.shape[1], d))
        return h + self.mlp(self.ln2(h))


class Transformer(nn.Module):
    """Decoder-only (causal) transformer with learned positional embeddings and no dropout.

    ``forward(tokens [B, T]) -> logits``: ``[B, outputs]`` from the last position when ``last_only``, else
    ``[B, T, outputs]``.

    With ``last_only`` and short sequences (``T <= SHORT_CONTEXT``) the forward shares work between sequences
    (``share_prefixes``, on by default): in a causal model the state at position ``t`` depends only on the prefix
    ``tokens[:, :t+1]``, so every block computes position ``t`` once per *distinct* prefix in the batch, and the first
    block's ``ln1``/``qkv`` once per distinct (token, position). The values are the plain forward's (tested to 1e-10
    in float64, gradients and Hessian-vector products included); only the work shrinks. On the modular task (``[a, op, b, =]``: positions 0-1
    take at most ``p`` distinct prefixes, position 3 a single token) this removes ~45 % of a step's matmul work.
    """

    def __init__(
        self,
        vocab: int,
        outputs: int,
        context: int,
        width: int = 128,
        heads: int = 4,
        depth: int = 2,
        mlp: int | None = None,
        last_only: bool = False,
        share_prefixes: bool = True,
    ):
        super().__init__()
        self.context = context
        self.last_only = last_only
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads, mlp or 4 * width) for _ in range(depth))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, outputs)
        self.share_prefixes = bool(share_prefixes)

    def prepare_population(self) -> None:
        """For ``descentlab.train_many``'s vmapped forward: the plain forward path (the shared-prefix one groups
        sequences with ``torch.unique``, whose output shape depends on the data and which vmap cannot batch). Both
        paths compute the same function; only the population's copy of the model is switched."""
        self.share_prefixes = False

    def forward(self, tokens: Tensor) -> Tensor:
        t = tokens.shape[1]
        if t > self.context:
            raise ValueError(f"sequence length {t} exceeds the context {self.context}")
        if self.last_only and self.share_prefixes and t <= SHORT_CONTEXT and len(self.blocks) > 0:
            return self._forward_shared_prefixes(tokens)
        h = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))
        for i, blk in enumerate(self.blocks):
            h = blk(h, last_only=self.last_only and i == len(self.blocks) - 1)
        if self.last_only:
            h = h[:, -1]
        return self.head(self.ln(h))

    def _forward_shared_prefixes(self, tokens: Tensor) -> Tensor:
        """The ``last_only`` forward computed once per distinct prefix (see the class docstring)."""
        b, t = tokens.shape
        dev = tokens.device
        vocab = self.tok.num_embeddings
        # Distinct prefixes per position: inv[i] maps each sequence to its prefix's row, rep[i] names one sequence
        # per row; ranks keep the keys small (key = previous prefix's rank * vocab + token < b * vocab).
        ar = torch.arange(b, device=dev)
        invs: list[Tensor] = []
        reps: list[Tensor] = []
        rank = torch.zeros(b, dtype=torch.long, device=dev)
        for i in range(t):
            _, rank = torch.unique(rank * vocab + tokens[:, i], return_inverse=True)
            n = int(rank.max()) + 1
            invs.append(rank)
            reps.append(
                torch.full((n,), b, dtype=torch.long, device=dev).scatter_reduce_(0, rank, ar, "amin")
            )
        sizes = [len(r) for r in reps]
        starts = [sum(sizes[:i]) for i in range(t)]
        # gather[i]: [U_i, i+1] rows (in the concatenation over positions) of the keys position i attends to.
        gather = [torch.stack([invs[j][reps[i]] + starts[j] for j in range(i + 1)], dim=1) for i in range(t)]
        toks = torch.cat([tokens[reps[i], i] for i in range(t)])
        pos = torch.cat([torch.full((n,), i, dtype=torch.long, device=dev) for i, n in enumerate(sizes)])
        # The first block's input depends only on (token, position): its ln1 and qkv run once per distinct pair.
        first_key, first_inv = torch.unique(pos * vocab + toks, return_inverse=True)
        h = self.tok(toks) + self.pos(pos)
        h_first = self.tok(first_key % vocab) + self.pos(first_key // vocab)
        last = len(self.blocks) - 1
        for li, blk in enumerate(self.blocks):
            d = h.shape[1]
            heads, dh = blk.heads, d // blk.heads
            w, bias = blk.qkv.weight, blk.qkv.bias
            z = blk.ln1(h_first) if li == 0 else blk.ln1(h)
            if li == last:  # keys and values everywhere, the query only at the read-out position
                kv = nn.functional.linear(z, w[d:], bias[d:])
                if li == 0:
                    kv = kv.index_select(0, first_inv)
                zq = z.index_select(0, first_inv[starts[-1] :]) if li == 0 else z[starts[-1] :]
                queries = [(t - 1, nn.functional.linear(zq, w[:d], bias[:d]))]
            else:
                qkv = blk.qkv(z)
                if li == 0:
                    qkv = qkv.index_select(0, first_inv)
                q, kv = qkv[:, :d], qkv[:, d:]
                queries = [(i, q[starts[i] : starts[i] + sizes[i]]) for i in range(t)]
            outs = []
            for i, qi in queries:
                # index_select, not advanced indexing: its backward (index_add_) is much faster on the CPU.
                kvi = kv.index_select(0, gather[i].reshape(-1)).view(sizes[i], i + 1, 2, heads, dh)
                kk, vv = kvi[:, :, 0], kvi[:, :, 1]
                s = (qi.reshape(sizes[i], 1, heads, dh) * kk).sum(-1) * dh**-0.5  # [U_i, i+1, heads]
                outs.append((s.softmax(1).unsqueeze(-1) * vv).sum(1).reshape(sizes[i], d))
            if li == last:
                h = h[starts[-1] :]
            h = h + blk.proj(torch.cat(outs) if len(outs) > 1 else outs[0])
            h = h + blk.mlp(blk.ln2(h))
        return self.head(self.ln(h)).index_select(0, invs[-1])


def modular_table(p: int, op: str) -> tuple[Tensor, Tensor]:
    """All equations: tokens ``[N, 4]`` = ``[a, op, b, =]`` and results ``[N]`` (int64), ``N = p^2`` or ``p(p-1)``."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    if op == "/":
        keep = b != 0
        a, b = a[keep], b[keep]
        inv = torch.tensor([pow(int(v), p - 2, p) for v in range(p)])  # Fermat: b^(p-2) = b^(-1) mod p
        res = (a * inv[b]) % p
    elif op == "+":
        res = (a + b) % p
    elif op == "-":
        res = (a - b) % p
    elif op == "*":
        res = (a * b) % p
    else:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    x = torch.stack([a, torch.full_like(a, p), b, torch.full_like(a, p + 1)], dim=1)
    return x, res


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, int(p**0.5) + 1))


def make_modular(
    p: int = 97,
    op: str = "+",
    train_fraction: float = 0.5,
    width: int = 128,
    heads: int = 4,
    depth: int = 2,
    seed: int = 0,
) -> Task:
    """``a op b mod p`` with a 2-layer causal transformer (width 128, 4 heads, MLP 4*width) read out at ``=``."""
    if op not in OPS:
        raise ValueError(f"modular: op must be one of {OPS}, got {op!r}")
    if not isinstance(p, int) or p < 2 or (op == "/" and not _is_prime(p)):
        raise ValueError(f"modular: p must be an integer >= 2 (a prime for '/'), got {p!r}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"modular: train_fraction must be in (0, 1), got {train_fraction!r}")
    for nm, v in (("width", width), ("heads", heads), ("depth", depth)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"modular: {nm} must be a positive integer, got {v!r}")
    if width % heads:
        raise ValueError(f"modular: width {width} must be divisible by heads {heads}")
    x, y = modular_table(p, op)
    perm = torch.randperm(len(y), generator=seeded_generator(seed))
    n_train = int(round(train_fraction * len(y)))
    tr, va = perm[:n_train], perm[n_train:]
    return Task(
        name="modular",
        train_data=(x[tr], y[tr]),
        val_data=(x[va], y[va]),
        model_factory=lambda s: Transformer(p + 2, p, 4, width, heads, depth, 4 * width, last_only=True),
        description=f"a {op} b mod {p} (grokking)",
        kind="classification",
        default_batch_size=512,
        default_lr=1e-3,
        default_steps=10000,
        default_eval_every=100,
        config={
            "p": p,
            "op": op,
            "train_fraction": train_fraction,
            "width": width,
            "heads": heads,
            "depth": depth,
            "seed": seed,
        },
    )


from descentlab.tasks import register  # noqa: E402

register("modular", make_modular, "a op b mod p with a small transformer (the grokking workload)")
