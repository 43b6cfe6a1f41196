"""The report: one self-contained HTML page from study folders, a benchmark report and the store; the tour.

``write_report(out, studies=[...], bench=..., store=...)`` builds ``<out>/index.html`` from existing outputs;
``run_tour(out, quick=True)`` runs every registered study (and a small benchmark) first. Loading lives in
``report.load``, rendering (jinja2 templates, static CSS/JS inlined) in ``report.render``.
"""

from __future__ import annotations

from descentlab.report.load import BenchSection, StudySection, load_bench, load_runs, load_study
from descentlab.report.render import build_page, write_report
from descentlab.report.tour import TourEntry, TourResult, run_tour, select_studies

__all__ = [
    "BenchSection",
    "StudySection",
    "TourEntry",
    "TourResult",
    "build_page",
    "load_bench",
    "load_runs",
    "load_study",
    "run_tour",
    "select_studies",
    "write_report",
]
