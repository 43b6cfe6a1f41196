"""Compatibility names: the report used to live in this one module.

Loading is :mod:`descentlab.report.load`, text forms :mod:`descentlab.report.formatting`, and rendering (jinja2
templates in ``templates/``) :mod:`descentlab.report.render`; import from there in new code.
"""

from __future__ import annotations

from descentlab.report.formatting import (
    flatten_numbers,
    format_value,
    reproduce_command,
    seed_order,
    train_command,
)
from descentlab.report.load import (
    COMMAND_FILE,
    FAILED_FILE,
    BenchSection,
    StudySection,
    bench_json_markdown,
    find_study_folders,
    load_bench,
    load_runs,
    load_study,
    normalize_trajectories,
    select_runs,
)
from descentlab.report.render import (
    build_page,
    markdown_to_html,
    png_data_uri,
    race_payload,
    runs_curves_png,
    write_report,
)

__all__ = [
    "COMMAND_FILE",
    "FAILED_FILE",
    "BenchSection",
    "StudySection",
    "bench_json_markdown",
    "build_page",
    "find_study_folders",
    "flatten_numbers",
    "format_value",
    "load_bench",
    "load_runs",
    "load_study",
    "markdown_to_html",
    "normalize_trajectories",
    "png_data_uri",
    "race_payload",
    "reproduce_command",
    "runs_curves_png",
    "seed_order",
    "select_runs",
    "train_command",
    "write_report",
]
