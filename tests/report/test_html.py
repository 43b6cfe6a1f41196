"""The page built from fabricated outputs: parses, has every section, embeds its images, no network references."""

from __future__ import annotations

import base64
import json
import shlex
from html.parser import HTMLParser
from pathlib import Path

import pytest

from descentlab.report import html as rh
from descentlab.report import write_report
from descentlab.report.tour import select_studies


class _Collect(HTMLParser):
    """Collect ids, section statuses, img sources, link targets and the stack balance of the page."""

    VOID = {"meta", "link", "img", "input", "br", "hr", "source", "image", "circle", "polyline"}

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.sections: dict[str, str] = {}
        self.imgs: list[str] = []
        self.refs: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "section":
            self.sections[a.get("id") or ""] = a.get("data-status") or ""
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        for k in ("href", "src"):
            if a.get(k):
                self.refs.append(a[k] or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>, open: {self.stack[-3:]}"
        self.stack.pop()


def _parse(page: Path) -> _Collect:
    p = _Collect()
    p.feed(page.read_text(encoding="utf-8"))
    p.close()
    assert p.stack == [], f"unclosed tags {p.stack}"
    return p


def test_page_sections_images_and_no_network(fabricated: dict[str, Path]) -> None:
    page = write_report(
        fabricated["tmp"] / "out",
        [fabricated["studies"]],
        bench=fabricated["bench"],
        store=fabricated["store"],
    )
    text = page.read_text(encoding="utf-8")
    p = _parse(page)
    for sid in (
        "study-methods-race",
        "study-sgd-noise-floor",
        "study-lookahead",
        "study-broken-study",
        "bench",
        "runs",
    ):
        assert sid in p.sections, sid
    assert {"race", "race-data", "race-svg"} <= p.ids
    assert p.sections["study-broken-study"] == "failed"
    assert p.sections["study-sgd-noise-floor"] == "partial"  # one claim of two fails
    assert p.sections["study-lookahead"] == "ok"
    assert "RuntimeError: boom" in text
    # 3 study figures + bench profile (PNG signature) and methods-race's animation (GIF signature), all embedded
    pngs = [s for s in p.imgs if s.startswith("data:image/png;base64,")]
    gifs = [s for s in p.imgs if s.startswith("data:image/gif;base64,")]
    assert len(pngs) == 4 and len(gifs) == 1 and len(p.imgs) == 5
    for src in pngs:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert base64.b64decode(gifs[0].split(",", 1)[1])[:6] == b"GIF89a"
    assert "http://" not in text and "https://" not in text
    assert all(r.startswith(("data:", "#")) or r == "" for r in p.refs), p.refs
    # markup in claims is escaped, numbers and the command are there
    assert "&lt;with markup&gt;" in text and "<with markup>" not in text
    assert "descentlab study lookahead --quick" in text
    # lecture order: seed 001 before 002 before 003
    assert text.index('id="study-sgd-noise-floor"') < text.index('id="study-methods-race"')
    assert text.index('id="study-methods-race"') < text.index('id="study-lookahead"')
    # the runs table lists the store's runs; the bench leaderboard became a table
    assert all(f">run-{i}<" in text for i in range(3))
    assert "<td>adamw</td>" in text
    assert "descentlab bench run -a adamw" in text  # the bench folder's command.txt
    # the embedded race data is valid JSON with every method and lr of trajectories.json
    start = text.index('id="race-data">') + len('id="race-data">')
    data = json.loads(text[start : text.index("</script>", start)].replace("<\\/", "</"))
    rb = data["functions"]["rosenbrock"]
    assert sorted(rb["runs"]) == ["adam", "gd", "heavy_ball"]
    assert rb["best"]["adam"] == "0.03" and rb["extent"] == [-2.0, 2.0, -1.0, 3.0]


def test_missing_trajectories_and_figure_are_handled(fabricated: dict[str, Path]) -> None:
    folder = fabricated["studies"] / "methods-race"
    (folder / "trajectories.json").unlink()
    (folder / "methods-race.png").unlink()
    page = write_report(fabricated["tmp"] / "out2", [folder])
    text = page.read_text(encoding="utf-8")
    assert 'id="race"' not in text and "<script>" not in text
    assert "figure methods-race.png is missing" in text


def test_folder_without_summary_is_failed(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    sec = rh.load_study(tmp_path / "empty")
    assert sec.failed and "no summary.json" in (sec.error or "")
    page = write_report(tmp_path / "out", [tmp_path / "empty"])
    assert 'data-status="failed"' in page.read_text(encoding="utf-8")


def test_bad_input_raises_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        write_report(tmp_path / "out", [tmp_path / "nope"])
    with pytest.raises(ValueError, match="nothing to report"):
        write_report(tmp_path / "out", [])
    with pytest.raises(ValueError, match="store"):
        write_report(tmp_path / "out", [], store=tmp_path / "missing.db")
    (tmp_path / "emptybench").mkdir()
    with pytest.raises(ValueError, match="leaderboard"):
        write_report(tmp_path / "out", [], bench=tmp_path / "emptybench")
    with pytest.raises(ValueError, match="unknown study 'no-such-study'"):
        select_studies(only="no-such-study")


def test_select_studies_only_skip_and_lecture_order() -> None:
    from descentlab import studies

    names = select_studies()
    assert sorted(names) == sorted(n for n in studies.available() if studies.get(n).in_tour)
    assert all(select_studies(only=n) == [n] for n in studies.available() if not studies.get(n).in_tour)
    seeds = [rh.seed_order(studies.get(n).slide) for n in names]
    assert seeds == sorted(seeds)
    assert select_studies(only="methods-race,lookahead", skip="lookahead") == ["methods-race"]
    assert "methods-race" not in select_studies(skip=["methods-race"])


def test_formatting_helpers() -> None:
    assert rh.flatten_numbers({"a": {"b": 1.23456, "c": [1, 2]}, "d": True, "e": None}) == [
        ("a.b", "1.235"),
        ("a.c", "[1, 2]"),
        ("d", "yes"),
        ("e", "—"),
    ]
    assert rh.format_value(list(range(20))) == "[0, 1, 2, 3, … ] (20 values)"
    assert rh.seed_order("seeds 000/002/004: 'Grokking'") == 0 and rh.seed_order("no seed") == 999
    md = rh.markdown_to_html("| a | b |\n|---|---:|\n| 1 | 2 |\n\nText line <b>x</b>\n")
    assert "<th>a</th>" in md and '<td style="text-align:right">2</td>' in md and "---" not in md
    assert "<p>Text line &lt;b&gt;x&lt;/b&gt;</p>" in md  # raw HTML in Markdown is shown as text


def test_reproduce_command_lists_changed_settings() -> None:
    from descentlab import studies

    st = studies.get("methods-race")
    cfg = json.loads(json.dumps(dict(st.quick), default=repr))
    assert rh.reproduce_command({"study": "methods-race", "quick": True, "config": cfg}) == (
        "descentlab study methods-race --quick"
    )
    cfg["rosenbrock_steps"] = 77
    cfg["seeds"] = 2
    cmd = rh.reproduce_command({"study": "methods-race", "quick": True, "config": cfg})
    assert "--set rosenbrock_steps=77" in cmd and "--seeds 2" in cmd


def test_race_payload_drops_diverged_points_and_stays_strict_json(fabricated: dict[str, Path]) -> None:
    traj = json.loads((fabricated["studies"] / "methods-race" / "trajectories.json").read_text())
    runs = traj["functions"]["rosenbrock"]["runs"]
    runs["gd"]["0.001"] = [[0.0, 0.0], [1.0, 2.0], [float("inf"), 1.0], [3.0, 3.0]]
    payload = rh.race_payload(traj, {"rosenbrock": {"gd": {"final_loss": {"0.001": float("nan")}}}})
    text = json.dumps(payload, allow_nan=False)  # raises on NaN/inf: the browser's JSON.parse would too
    rb = json.loads(text)["functions"]["rosenbrock"]
    assert rb["runs"]["gd"]["0.001"] == [[0.0, 0.0], [1.0, 2.0]]  # the path ends where it left the reals
    assert rb["final"]["gd"]["0.001"] == "nan"
    assert rb["image"].startswith("data:image/png;base64,")


def test_selected_runs_curves_and_restricted_table(fabricated: dict[str, Path]) -> None:
    sel = rh.select_runs(fabricated["store"], ["run-*", "run-1"])  # a glob and a duplicate exact id
    assert [r.id for r in sel] == ["run-0", "run-1", "run-2"]
    assert sel[0].metrics("loss")[-1] == (100, pytest.approx(0.5 * 0.9**10))
    page = write_report(fabricated["tmp"] / "sel", store=fabricated["store"], run_ids=["run-*"])
    text = page.read_text(encoding="utf-8")
    p = _parse(page)
    assert "selected-runs" in p.sections and "runs" in p.sections
    assert len(p.imgs) == 1 and base64.b64decode(p.imgs[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(f">run-{i}<" in text for i in range(3)) and ">other-0<" not in text  # only the selection
    with pytest.raises(ValueError, match="no run .* matches 'nope-\\*'"):
        rh.select_runs(fabricated["store"], ["nope-*"])
    # runs without any history: a section without a figure, no crash
    page = write_report(fabricated["tmp"] / "sel2", store=fabricated["store"], run_ids=["other-0"])
    assert "recorded no loss or accuracy history" in page.read_text(encoding="utf-8")


def test_bench_scores_json(fabricated: dict[str, Path]) -> None:
    scores = {
        "times": {"sgd": {"logreg": 2.5, "digits": None}, "adamw": {"logreg": 1.25, "digits": 3.0}},
        "scores": {"sgd": 0.4, "adamw": 0.95},
        "missing": 2,
    }
    path = fabricated["tmp"] / "scores.json"
    path.write_text(json.dumps(scores))
    md = rh.bench_json_markdown(scores)
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows == [
        "| 1 | adamw | 0.95 | 3 | 1.25 |",
        "| 2 | sgd | 0.4 | — | 2.5 |",
    ]  # digits, logreg columns
    assert "2 trials had no result" in md
    page = write_report(fabricated["tmp"] / "bj", bench=path)
    text = page.read_text(encoding="utf-8")
    assert 'id="bench" data-status="ok"' in text and "<td>adamw</td>" in text and "digits (s)</th>" in text
    path.write_text(json.dumps({"times": {}}))
    with pytest.raises(ValueError, match="no 'scores'"):
        write_report(fabricated["tmp"] / "bj", bench=path)
    with pytest.raises(ValueError, match="does not exist"):
        write_report(fabricated["tmp"] / "bj", bench=fabricated["tmp"] / "missing.json")
    (fabricated["tmp"] / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a folder"):
        write_report(fabricated["tmp"] / "bj", bench=fabricated["tmp"] / "notes.txt")


def test_single_function_trajectories_are_wrapped(fabricated: dict[str, Path]) -> None:
    folder = fabricated["studies"] / "methods-race"
    data = json.loads((folder / "trajectories.json").read_text())["functions"]["rosenbrock"]
    flat = {"function": data["function"], "contours": data["contours"], "runs": data["runs"]}
    (folder / "trajectories.json").write_text(json.dumps(flat))
    sec = rh.load_study(folder)
    assert sec.trajectories is not None and list(sec.trajectories["functions"]) == ["rosenbrock"]
    assert rh.normalize_trajectories({"runs": []}) is None and rh.normalize_trajectories([1]) is None
    text = write_report(fabricated["tmp"] / "flat", [folder]).read_text(encoding="utf-8")
    assert 'id="race-data"' in text


def test_train_command_round_trips_through_the_cli_parser() -> None:
    from descentlab.cli import parse_sets

    cfg = {"task": "logreg", "optimizer": "sgd", "lr": 0.1 * 3, "steps": 300, "batch_size": 1, "seed": 2,
           "schedule": "strongly_convex", "schedule_kw": {"mu": 1.0}, "hparams": {"betas": [0.9, 0.98]},
           "task_kw": {"m": 200, "n": 10}, "averaging": None}  # fmt: skip
    argv = shlex.split(rh.train_command(cfg))
    assert argv[:4] == ["descentlab", "train", "--task", "logreg"]
    opts = dict(zip(argv[4::2], argv[5::2]))
    assert opts["--optimizer"] == "sgd" and opts["--lr"] == "0.3" and opts["--seed"] == "2"
    assert opts["--schedule"] == "strongly_convex" and parse_sets([opts["--schedule-set"]]) == {"mu": 1.0}
    assert parse_sets([opts["--set"]]) == {"betas": (0.9, 0.98)}
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--task-set"]
    assert parse_sets(sets) == {"m": 200, "n": 10}
