"""Three-valued verdicts on the page (summary.json schema of issue 16): the claims table, checks apart, anchors and
the tour page's Reproduction table; old {claim, holds, evidence} summaries still render. Hand-made summaries only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from descentlab.report import load_study, write_report
from descentlab.report.formatting import format_estimate, format_number, format_seeds
from descentlab.report.load import claim_verdict
from descentlab.report.render import STATUS_LABELS


def _section(text: str, sid: str) -> str:
    start = text.index(f'<section class="study" id="{sid}"')
    return text[start : text.index("</section>", start)]


def test_load_counts_verdicts_and_keeps_checks_apart(
    tmp_path: Path, verdict_maker: Any, anchors: Any
) -> None:
    folder = verdict_maker(tmp_path, "dd", "seed 004, 'DD'", ["holds", "fails", "inconclusive", "holds"],
                           checks=[True, False], anchors=anchors[:1])  # fmt: skip
    sec = load_study(folder)
    assert (sec.claims_held, sec.claims_failed, sec.claims_inconclusive) == (2, 1, 1)
    assert len(sec.claims) == 4 and len(sec.checks) == 2 and len(sec.anchors) == 1
    assert sec.status == "partial"
    # old summaries: the verdict comes from "holds"; an unknown verdict string falls back the same way
    assert claim_verdict({"claim": "x", "holds": True}) == "holds"
    assert claim_verdict({"claim": "x", "holds": False}) == "fails"
    assert claim_verdict({"claim": "x", "holds": False, "verdict": "inconclusive"}) == "inconclusive"
    assert claim_verdict({"claim": "x", "holds": True, "verdict": "maybe"}) == "holds"


def test_claims_table_checks_anchors_and_header(
    tmp_path: Path, verdict_maker: Any, study_maker: Any, anchors: list[dict[str, Any]]
) -> None:
    root = tmp_path / "studies"
    verdict_maker(root, "double-descent", "seed 004, 'Double descent'", ["holds", "fails", "inconclusive"],
                  checks=[True, False], anchors=anchors[:2])  # fmt: skip
    verdict_maker(root, "grokking", "seed 000, 'Grokking'", ["holds", "holds"], checks=[True],
                  anchors=anchors[2:])  # fmt: skip
    study_maker(root, "lookahead", "seed 003, 'Lookahead'", [True, False])  # the old schema, no checks
    text = write_report(tmp_path / "out", [root]).read_text(encoding="utf-8")

    # header: claims counted by verdict (7 claims: 4 hold, 2 fail, 1 inconclusive); the 3 checks are not claims
    header = text[text.index("<header>") : text.index("</header>")]
    assert "3 studies (0 failed) · 7 claims: <b>4 hold</b> · 2 fail · 1 inconclusive" in header
    assert "2/3 checks pass (not counted as claims)" in header

    dd = _section(text, "study-double-descent")
    assert 'data-status="partial"' in dd and STATUS_LABELS["partial"] in dd
    assert STATUS_LABELS["partial"] == "some claims fail or are inconclusive"
    rows = re.findall(r'<tr class="(\w+)" data-verdict="(\w+)">', dd)
    assert rows == [("holds", "holds"), ("fails", "fails"), ("inconclusive", "inconclusive")]
    for badge in ("✓ holds", "✗ fails", "? inconclusive"):
        assert badge in dd
    assert re.findall(r'<span class="badge (\w+)">', dd)[:3] == ["holds", "fails", "inconclusive"]
    # statement, source, predicted, estimate mean [lo, hi], method, n
    assert (
        "The double-descent-c0 effect shows up" in dd and "seed 003, slide &#39;double-descent-c0&#39;" in dd
    )
    assert '<td class="num">&gt; 0</td>' in dd
    assert "0.5 [0.4, 0.6]" in dd and "-0.5 [-0.6, -0.4]" in dd and "0.1 [-0.3, 0.5]" in dd
    assert "t, 95 %" in dd and '<td class="num">3</td>' in dd
    assert "[0.4, 0.5, 0.6]" in dd  # per-seed values
    # checks listed apart, not in the claims table
    checks = dd[dd.index("Checks, not claims") :]
    assert "1/2 pass" in checks and "identity 0 of double-descent" in checks and "not-passed" in checks
    assert "identity 0" not in dd[: dd.index("Checks, not claims")]
    # the study's own anchors
    assert "Published numbers" in dd and "median test MSE at d = 15" in dd and "Greydanus 2020" in dd

    gk = _section(text, "study-grokking")
    assert 'data-status="ok"' in gk and "all claims hold" in gk
    assert "evaluation seeds 0–2 · tuning seeds 1000, 1001" in gk

    # an old summary ({claim, holds, evidence}) renders in the same table, without measured columns
    la = _section(text, "study-lookahead")
    assert 'data-status="partial"' in la and "✗ fails" in la and "measured 1.5 vs 1" in la
    assert "predicted" not in la and "Checks, not claims" not in la

    # the Reproduction table: every study's anchors, before the studies, with ratio and verdict
    assert text.index('id="reproduction"') < text.index('id="study-grokking"')
    repro = text[text.index('id="reproduction"') : text.index("</section>", text.index('id="reproduction"'))]
    assert "1 reproduced · 1 partly · 1 not reproduced" in repro
    for a in anchors:
        assert a["quantity"] in repro and a["source"] in repro
    # lecture order: grokking (seed 000) before double-descent (seed 004)
    assert re.findall(r'<tr data-verdict="([a-z ]+)">', repro) == ["not reproduced", "reproduced", "partly"]
    assert "5.9e6 [3.1e6, 8.7e6]" in repro and "6.7e6" in repro and "54.05" in repro and "0.574" in repro
    assert 'class="badge not-reproduced"' in repro and 'href="#study-double-descent"' in repro
    assert '<a href="#reproduction">' in header


def test_non_finite_intervals_and_no_claims(tmp_path: Path, verdict_maker: Any) -> None:
    folder = verdict_maker(tmp_path, "one-seed", "seed 005, 'x'", ["inconclusive"])
    summary = json.loads((folder / "summary.json").read_text())
    c = summary["claims"][0]
    c.update(values=[0.3], n=1, mean=0.3, interval=["-inf", "inf"], inconclusive_reason="1 finite value(s)")
    (folder / "summary.json").write_text(json.dumps(summary))
    empty = verdict_maker(tmp_path, "checks-only", "seed 006, 'y'", [], checks=[True])
    text = write_report(tmp_path / "out", [folder, empty]).read_text(encoding="utf-8")
    assert "0.3 [−∞, ∞]" in text and "inconclusive: 1 finite value(s)" in text
    assert 'id="reproduction"' not in text  # no anchors, no table
    sec = _section(text, "study-checks-only")
    assert "no claims" in sec and "This study states no claims." in sec and "1/1 pass" in sec


def test_user_text_in_summaries_is_escaped(tmp_path: Path, verdict_maker: Any, anchors: Any) -> None:
    folder = verdict_maker(tmp_path, "esc", "seed 001, '<b>slide</b>'", ["holds"], checks=[True],
                           anchors=[{**anchors[0], "quantity": "<script>alert(1)</script>"}])  # fmt: skip
    summary = json.loads((folder / "summary.json").read_text())
    summary["claims"][0]["claim"] = "<img src=x onerror=alert(1)>"
    summary["checks"][0]["check"] = "</li><script>alert(2)</script>"
    summary["config"]["lr"] = "<script>alert(3)</script>"
    (folder / "summary.json").write_text(json.dumps(summary))
    text = write_report(tmp_path / "out", [folder]).read_text(encoding="utf-8")
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>slide" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_formatting_of_estimates_and_seeds() -> None:
    assert (
        format_number(6.7e6) == "6.7e6"
        and format_number(1.25e-5) == "1.25e-5"
        and format_number(54.05) == "54.05"
    )
    assert format_number("-inf") == "−∞" and format_number(None) == "—" and format_number("nan") == "nan"
    assert format_estimate(0.5, [0.4, 0.6]) == "0.5 [0.4, 0.6]" and format_estimate(None, [0, 1]) == "—"
    # a log-scale prediction is shown on its threshold's scale: the geometric mean and its interval
    import math

    got = format_estimate(math.log(2.0), [math.log(1.5), math.log(3.0)], "log")
    assert got == "2 [1.5, 3] (geometric mean)", got
    assert format_estimate(1.0, [-2.0, 900.0], "log").endswith(
        ", ∞] (geometric mean)"
    )  # past float range: inf
    assert format_seeds([0, 1, 2, 3, 4]) == "0–4" and format_seeds([1000, 1001]) == "1000, 1001"
    assert format_seeds([]) == "—"
