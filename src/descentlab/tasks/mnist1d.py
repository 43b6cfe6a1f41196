"""MNIST-1D (Greydanus & Kobak 2024): 1-D signals of length 40, 10 classes, generated offline by the ``mnist1d``
package (``make_dataset``; never ``get_dataset``, which downloads). ``num_samples=5000`` gives the paper's 4000
train / 1000 test split. Defaults: Adam-scale ``lr=1e-2``, batch 100; the paper reports ~68 % test accuracy for
its MLP and ~94 % for its CNN.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from descentlab.tasks.base import Task, seeded_generator


def cache_dir() -> Path | None:
    """Where generated datasets are kept between processes: ``$DESCENTLAB_CACHE``, else
    ``$XDG_CACHE_HOME/descentlab`` (``~/.cache/descentlab``); ``DESCENTLAB_CACHE=0`` turns the disk cache off."""
    env = os.environ.get("DESCENTLAB_CACHE")
    if env is not None:
        return None if env.strip() in ("", "0", "off", "none") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "descentlab"


_ARRAYS = ("x", "y", "x_test", "y_test")


@functools.lru_cache(maxsize=8)
def _generate(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MNIST-1D arrays for ``(num_samples, seed)``: from the disk cache when present, else generated.

    Generating costs ~4 s (plus ~2.4 s to import ``mnist1d.data``) in every fresh process — each benchmark worker,
    each CLI command. The arrays are a pure function of the generator's version and arguments, so they are kept as
    ``.npz`` (loaded with ``allow_pickle=False``; written atomically) under :func:`cache_dir`, keyed by the
    ``mnist1d`` version, ``num_samples`` and ``seed``, with those three and a SHA-256 of the arrays inside the file
    (:func:`fingerprint`). An unreadable or malformed file, one made for other arguments, or one whose arrays do not
    match their recorded hash is regenerated (and rewritten).
    """
    folder = cache_dir()
    path = None
    if folder is not None:
        try:
            ver = importlib.metadata.version("mnist1d")
        except importlib.metadata.PackageNotFoundError:
            ver = "unknown"
        path = folder / f"mnist1d-{ver}-n{int(num_samples)}-s{int(seed)}.npz"
        meta = {"generator": f"mnist1d {ver}", "num_samples": int(num_samples), "seed": int(seed)}
        try:
            with np.load(path, allow_pickle=False) as f:
                out = tuple(f[k] for k in _ARRAYS)
                stored = json.loads(str(f["meta"][()]))
            n_train = int(round(0.8 * num_samples))
            if (
                out[0].shape == (n_train, 40)
                and out[2].shape == (num_samples - n_train, 40)
                and stored
                == {**meta, "sha256": fingerprint(out)}  # another seed's file, or altered bytes: no
            ):
                return out  # type: ignore[return-value]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    out = _make(num_samples, seed)
    if path is not None:
        from descentlab.safe_write import atomic_open

        with contextlib.suppress(
            OSError, ValueError
        ):  # a read-only or full disk: the data are still returned
            with atomic_open(path, "wb") as fh:
                np.savez(
                    fh,
                    **dict(zip(_ARRAYS, out)),
                    meta=np.array(json.dumps({**meta, "sha256": fingerprint(out)})),
                )
    return out


def fingerprint(arrays: tuple[np.ndarray, ...]) -> str:
    """SHA-256 over the arrays' dtypes, shapes and bytes: what a cache file must hold to be trusted."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _make(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``mnist1d.data.make_dataset`` with the given size and seed (global RNG states are restored afterwards)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(seed)
    py_state, np_state = random.getstate(), np.random.get_state()  # make_dataset reseeds the global RNGs
    try:
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return (
        d["x"].astype(np.float32),
        d["y"].astype(np.int64),
        d["x_test"].astype(np.float32),
        d["y_test"].astype(np.int64),
    )


def mnist1d_data(
    num_samples: int = 5000, label_noise: float = 0.0, seed: int = 42
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train, test) tensors ``(x float32 [N, 40], y int64 [N])``.

    ``label_noise``: the fraction of *training* labels replaced by uniformly random labels (drawn from a generator
    seeded by ``seed``; a replacement may coincide with the true label), as in the double-descent experiments.
    """
    if not isinstance(num_samples, int) or num_samples < 20:
        raise ValueError(f"mnist1d: num_samples must be an integer >= 20, got {num_samples!r}")
    if not 0 <= label_noise <= 1:
        raise ValueError(f"mnist1d: label_noise must be in [0, 1], got {label_noise!r}")
    x, y, xt, yt = _generate(num_samples, int(seed))
    xtr, ytr = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    if label_noise > 0:
        g = seeded_generator(int(seed) + 7919)
        k = int(round(label_noise * len(ytr)))
        idx = torch.randperm(len(ytr), generator=g)[:k]
        ytr[idx] = torch.randint(0, 10, (k,), generator=g)
    return (xtr, ytr), (torch.from_numpy(xt.copy()), torch.from_numpy(yt.copy()))


def mlp(width: int = 100, depth: int = 2, inputs: int = 40, classes: int = 10) -> nn.Sequential:
    """ReLU MLP with ``depth`` hidden layers of ``width`` units."""
    layers: list[nn.Module] = []
    d = inputs
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    layers.append(nn.Linear(d, classes))
    return nn.Sequential(*layers)


class ConvNet1d(nn.Module):
    """The MNIST-1D paper's small CNN: 3 x (Conv1d kernel 5, stride 2, padding 1, ReLU), then a linear readout."""

    def __init__(self, channels: int = 25, length: int = 40, classes: int = 10):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        with torch.no_grad():
            out = self.convs(torch.zeros(1, 1, length)).numel()
        self.linear = nn.Linear(out, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x.unsqueeze(1)).flatten(1))


def _task(name: str, model_factory, config: dict, num_samples: int, label_noise: float, seed: int) -> Task:
    train, val = mnist1d_data(num_samples, label_noise, seed)
    return Task(
        name=name,
        train_data=train,
        val_data=val,
        model_factory=model_factory,
        description=f"MNIST-1D, {name.split('_')[1].upper()}",
        kind="classification",
        default_batch_size=100,
        default_lr=1e-2,
        default_steps=3000,
        default_eval_every=100,
        config=config,
    )


def make_mnist1d_mlp(
    width: int = 100, depth: int = 2, num_samples: int = 5000, label_noise: float = 0.0, seed: int = 42
) -> Task:
    """MLP (``depth`` hidden ReLU layers of ``width``) on MNIST-1D; ``seed=42`` is the package's standard data."""
    if not isinstance(width, int) or width < 1 or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"mnist1d_mlp: need integer width >= 1 and depth >= 0, got {width!r}, {depth!r}")
    cfg = {
        "width": width,
        "depth": depth,
        "num_samples": num_samples,
        "label_noise": label_noise,
        "seed": seed,
    }
    return _task("mnist1d_mlp", lambda s: mlp(width, depth), cfg, num_samples, label_noise, seed)


def make_mnist1d_cnn(
    channels: int = 25, num_samples: int = 5000, label_noise: float = 0.0, seed: int = 42
) -> Task:
    """The paper's 3-layer Conv1d network (``channels`` per layer) on MNIST-1D."""
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"mnist1d_cnn: channels must be a positive integer, got {channels!r}")
    cfg = {"channels": channels, "num_samples": num_samples, "label_noise": label_noise, "seed": seed}
    return _task("mnist1d_cnn", lambda s: ConvNet1d(channels), cfg, num_samples, label_noise, seed)


from descentlab.tasks import register  # noqa: E402

register(
    "mnist1d_mlp", make_mnist1d_mlp, "MLP on MNIST-1D (generated offline; options width, depth, label_noise)"
)
register("mnist1d_cnn", make_mnist1d_cnn, "the MNIST-1D paper's small 1-D CNN")
