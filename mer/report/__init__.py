"""Reports: comparison tables and figures from stored experiment results."""

from mer.report.tables import compare_runs, to_markdown, to_text

__all__ = ["compare_runs", "to_markdown", "to_text"]
