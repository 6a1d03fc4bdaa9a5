"""Reports of refute results: tables a reviewer can read without the code."""

from refute.report._causal import causal_html, causal_markdown, load_causal, write_causal_report
from refute.report._compare import compare_runs, default_direction, plan_from_rate, plan_from_run
from refute.report._plots import Row, interval_plot
from refute.report._summary import (
    ChainRates,
    RunSummary,
    calibration_line,
    primary_scorer,
    print_run_summary,
    run_observations,
    statistic_name,
    summarize_run,
)
from refute.report.tables import (
    METHOD_NOTES,
    comparison_table,
    describe_method,
    plan_table,
    rate_table,
)

__all__ = [
    "METHOD_NOTES",
    "ChainRates",
    "RunSummary",
    "compare_runs",
    "default_direction",
    "plan_from_rate",
    "plan_from_run",
    "primary_scorer",
    "print_run_summary",
    "run_observations",
    "summarize_run",
    "calibration_line",
    "statistic_name",
    "Row",
    "interval_plot",
    "comparison_table",
    "describe_method",
    "plan_table",
    "rate_table",
    "causal_html",
    "causal_markdown",
    "load_causal",
    "write_causal_report",
]
