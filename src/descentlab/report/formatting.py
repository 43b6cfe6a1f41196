"""Text forms of the numbers and commands the report shows (used by loading, rendering and the tour)."""

from __future__ import annotations

import json
import math
import re
import shlex
from typing import Any


def as_float(v: Any) -> float | None:
    """``v`` as a float (``"inf"`` and ``"nan"`` included), None when it is not a number."""
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def format_value(v: Any) -> str:
    """A compact text form of a number (4 significant digits), list (short ones in full) or other value."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "—"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, (int, float, str, type(None))) and not isinstance(x, bool) for x in v):
            if len(v) <= 8:
                return "[" + ", ".join(format_value(x) for x in v) + "]"
            return "[" + ", ".join(format_value(x) for x in v[:4]) + f", … ] ({len(v)} values)"
        return f"[{len(v)} items]"
    return str(v)


def format_number(v: Any) -> str:
    """A number (or its JSON text form such as ``"inf"``) with 4 significant digits (``6.7e6``, ``−∞``); ``—``
    when absent."""
    f = as_float(v)
    if f is None:
        return "—" if v is None or v == "" else str(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return re.sub(
        r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), f"{f:.4g}"
    )


def _exp(x: float) -> float:
    """exp(x), inf past float range (a wide log-scale interval's end must not crash a table)."""
    return math.exp(x) if x < 709.0 else math.inf


def format_estimate(mean: Any, interval: Any = None, scale: str | None = None) -> str:
    """``mean [lo, hi]`` (an interval that is not two numbers is left out); ``—`` without a mean. For a prediction
    judged on the ``log`` scale (mean and interval of ln(value)), the numbers are shown back on the value's own
    scale, where its threshold is: the geometric mean and its interval."""
    m = as_float(mean)
    if m is None:
        return "—"
    two = isinstance(interval, (list, tuple)) and len(interval) == 2
    if scale == "log":
        ends = [as_float(v) for v in interval] if two else []
        text = format_number(_exp(m))
        if two and None not in ends:
            text += f" [{format_number(_exp(ends[0]))}, {format_number(_exp(ends[1]))}]"
        return text + " (geometric mean)"
    text = format_number(mean)
    if two:
        text += f" [{format_number(interval[0])}, {format_number(interval[1])}]"
    return text


def flatten_numbers(numbers: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1.5}}`` -> ``[("a.b", "1.5")]``: nested dicts become dotted keys, leaves compact text."""
    rows: list[tuple[str, str]] = []
    if isinstance(numbers, dict):
        for k, v in numbers.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                rows.extend(flatten_numbers(v, key))
            else:
                rows.append((key, format_value(v)))
    else:
        rows.append((prefix or "value", format_value(numbers)))
    return rows


def format_seeds(seeds: Any) -> str:
    """A list of seeds as text, consecutive runs shortened (``[0, 1, 2, 3]`` -> ``0–3``)."""
    if not isinstance(seeds, (list, tuple)) or not seeds:
        return "—"
    if all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        xs = list(seeds)
        if len(xs) > 2 and xs == list(range(xs[0], xs[0] + len(xs))):
            return f"{xs[0]}–{xs[-1]}"
    return ", ".join(str(s) for s in seeds)


def seed_order(slide: str) -> int:
    """The first seed number in a slide reference ("seed 003, ..." -> 3), 999 if none: the lecture order."""
    m = re.search(r"seeds?\s+(\d+)", slide or "")
    return int(m.group(1)) if m else 999


def _set_arg(v: Any) -> str:
    """A value as the command line writes it (floats to 12 significant digits: 0.1 * 3 is written 0.3)."""
    if isinstance(v, float):
        return f"{v:.12g}"
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, str)) for x in v):
        return ",".join(_set_arg(x) for x in v)
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v)
    return str(v).lower() if isinstance(v, bool) or v is None else str(v)


def reproduce_command(summary: dict[str, Any]) -> str:
    """The ``descentlab study`` command that reruns a summary's configuration (``--set`` for changed settings)."""
    name = str(summary.get("study", "?"))
    quick = bool(summary.get("quick"))
    parts = ["descentlab", "study", name] + (["--quick"] if quick else [])
    config = summary.get("config") or {}
    try:
        from descentlab import studies

        base = studies.get(name)
        default = json.loads(json.dumps(dict(base.quick if quick else base.full), default=repr))
    except (ValueError, ImportError):
        default = None
    if isinstance(default, dict) and isinstance(config, dict):
        for k, v in config.items():
            if k == "seeds" and v != default.get("seeds"):
                parts += ["--seeds", str(v)]
            elif k in default and v != default[k]:
                parts += ["--set", f"{k}={_set_arg(v)}"]
    return " ".join(shlex.quote(p) for p in parts)


def train_command(config: dict[str, Any]) -> str:
    """The ``descentlab train`` command for a stored run's configuration (task, optimizer, lr, steps, batch size,
    schedule, seed and their ``--set``/``--task-set``/``--schedule-set`` options). Settings the command line cannot
    express (averaging, callbacks, a custom optimizer object) are not included."""
    parts = ["descentlab", "train", "--task", str(config.get("task", "?"))]
    flags = (("optimizer", "--optimizer"), ("lr", "--lr"), ("steps", "--steps"), ("batch_size", "--batch-size"),
             ("schedule", "--schedule"), ("seed", "--seed"), ("eval_every", "--eval-every"),
             ("time_budget", "--time-budget"))  # fmt: skip
    for key, flag in flags:
        if config.get(key) is not None:
            parts += [flag, _set_arg(config[key])]
    for key, flag in (("hparams", "--set"), ("task_kw", "--task-set"), ("schedule_kw", "--schedule-set")):
        for k, v in (config.get(key) or {}).items():
            parts += [flag, f"{k}={_set_arg(v)}"]
    return " ".join(shlex.quote(p) for p in parts)
