"""Atomic output files that never write through a planted symbolic link.

Every file the product writes for a user (report pages, figures, JSON numbers, CSV exports, checkpoints) goes
through :func:`atomic_open`: the bytes go to a fresh temporary file beside the target, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` under an unpredictable name (a link or file planted there makes the open fail,
it is never followed), are flushed and fsynced, and the temporary file is renamed over the target. A rename never
follows a link, and a failed write (full disk, Ctrl-C) leaves the previous file as it was. A symbolic link *at the
target* is refused outright. Temporary files left by killed writers (their process is gone) are removed on the next
write to the same target.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

STALE_SECONDS = 24 * 3600.0
"""A temporary file of a still-running process is removed only after this long (its writer is stuck or elsewhere)."""

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def temp_name(target: Path) -> Path:
    """A fresh temporary name beside ``target``: ``.<name>.<pid>.<random>.tmp`` (hidden, unpredictable)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def clean_stale(target: Path) -> list[Path]:
    """Remove the temporary files of earlier writes to ``target`` whose writer process is gone (or that are older
    than :data:`STALE_SECONDS`); returns what was removed. Only names this module makes are touched, and a
    removal never follows a link."""
    name = re.escape(target.name)  # this module's names, and ``<name>.tmp<pid>`` of older checkpoint writers
    pattern = re.compile(r"\." + name + r"\.(\d+)\.[0-9a-f]{16}\.tmp|" + name + r"\.tmp(\d+)")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None:
            continue
        pid = int(m.group(1) or m.group(2))
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if pid == os.getpid() and age < STALE_SECONDS:
            continue  # this process may be writing it right now (another thread)
        if not _alive(pid) or age > STALE_SECONDS:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def refuse_link(target: Path) -> None:
    """ValueError when ``target`` is a symbolic link (an output is replaced, never written through a link)."""
    if target.is_symlink():
        raise ValueError(
            f"refusing to write {str(target)!r}: it is a symbolic link (to {os.readlink(target)!r}); "
            "remove it or choose another path"
        )


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``mode`` "wb" or "w"); on a clean exit it is fsynced and
    renamed over ``path``, on an error it is removed and ``path`` is left as it was. Refuses (ValueError) a
    symbolic link at ``path`` and a directory there; OSError from the file system passes through."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    refuse_link(target)
    if target.is_dir():
        raise ValueError(f"cannot write {str(target)!r}: it is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    tmp = temp_name(target)
    fd = os.open(tmp, _FLAGS, 0o666)
    try:
        with os.fdopen(
            fd, mode, encoding=encoding if mode == "w" else None, newline="" if mode == "w" else None
        ) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        refuse_link(
            target
        )  # planted while we wrote: still never followed (rename replaces the link), but refused
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike[str], **savefig_kw: Any) -> Path:
    """``fig.savefig`` into ``path`` atomically, in the format its suffix names (png, svg, pdf ...)."""
    target = Path(path)
    fmt = savefig_kw.pop("format", None) or target.suffix.lstrip(".").lower() or "png"
    with atomic_open(target, "wb") as f:
        fig.savefig(f, format=fmt, **savefig_kw)
    return target
