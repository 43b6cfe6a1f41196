"""The README's examples, run as written: every ```bash line and every ```python block, in order.

Each runs in a subprocess in one scratch folder shared by the module (later lines use earlier runs, e.g.
``landscape lr01`` needs the ``train ... --run-id lr01`` above it), with ``.venv`` linked to this checkout's and
``DESCENTLAB_STORE`` pointing into the scratch folder. ``make demo`` runs in the repository (it needs the Makefile and
writes ``runs/tour`` there, which git ignores). Two cheap examples run in the default suite; the rest (tours,
studies, trainings, the benchmark) are ``slow`` (``make test-all``). Nothing is edited or shortened.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# In the default suite: the logreg run and its landscape (a README example that once failed), a few seconds each.
# Everything else is slow (`make test-all`).
FAST = (
    re.compile(r"descentlab train --task logreg .*--run-id lr01"),
    re.compile(r"descentlab landscape lr01 --kind hessian"),
)
# `make test` is the command that runs this suite: running it from here would run the suite inside itself.
SKIP = {"make test": "`make test` runs this very suite (ruff + pytest); it cannot usefully run inside it"}


def readme_examples(text: str | None = None) -> list[tuple[str, str]]:
    """``(language, code)`` of every README example in order: one per non-comment ``bash`` line, one per ``python``
    block."""
    text = README.read_text() if text is None else text
    out: list[tuple[str, str]] = []
    for lang, body in re.findall(r"^```(bash|python)[ \t]*\n(.*?)^```", text, flags=re.S | re.M):
        if lang == "python":
            out.append(("python", body))
            continue
        for line in body.splitlines():
            if line.split("#", 1)[0].strip():
                out.append(("bash", line))
    return out


def _command(code: str) -> str:
    """The command part of a bash line (before its trailing comment), for ids and matching."""
    return code.split("  #", 1)[0].strip()


def _params() -> list:
    params = []
    for i, (lang, code) in enumerate(readme_examples()):
        first = _command(code) if lang == "bash" else code.strip().splitlines()[-1]
        ident = f"{i:02d}-{lang}-{first[:70]}"
        marks = []
        skip = next(
            (why for prefix, why in SKIP.items() if lang == "bash" and _command(code).startswith(prefix)),
            None,
        )
        if skip:
            marks.append(pytest.mark.skip(reason=skip))
        elif not any(p.search(code) for p in FAST):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(lang, code, marks=marks, id=ident))
    return params


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The folder the examples run in: empty but for ``.venv`` (a link to this checkout's environment)."""
    root = tmp_path_factory.mktemp("readme")
    venv = REPO / ".venv"
    if not (venv / "bin" / "descentlab").exists():
        pytest.skip("the README's commands need .venv/bin/descentlab (make installs it)")
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    return root


def test_examples_are_found():
    found = readme_examples()
    codes = [c for _, c in found]
    assert sum(lang == "python" for lang, _ in found) >= 4
    assert any("landscape lr01 --kind hessian" in c for c in codes)
    assert any("study methods-race --quick --set steps=300" in c for c in codes)
    assert readme_examples("```bash\nx  # c\n# only a comment\n\n```\n```python\nprint(1)\n```\n") == [
        ("bash", "x  # c"),
        ("python", "print(1)\n"),
    ]


@pytest.mark.parametrize(("lang", "code"), _params())
def test_readme_example(lang, code, scratch):
    env = dict(os.environ, DESCENTLAB_STORE=str(scratch / "runs" / "descentlab.db"))
    slow = not any(p.search(code) for p in FAST)
    timeout = 4 * 3600 if slow else 600
    if lang == "python":
        proc = subprocess.run(
            [str(scratch / ".venv" / "bin" / "python"), "-"],
            input=code, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    else:
        cwd = REPO if _command(code).startswith("make ") else scratch
        proc = subprocess.run(
            ["bash", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    assert proc.returncode == 0, (
        f"{code}\nexit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if "runs export lr01 --csv lr01.csv" in code:
        assert (scratch / "lr01.csv").read_text().startswith("step")
    if "landscape lr01 --kind hessian" in code:
        assert (scratch / "runs" / "landscape" / "lr01" / "hessian.json").exists()
