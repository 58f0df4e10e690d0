"""The benchmark report: from the harness's records to BENCHMARKS.md, ROBUSTNESS.md and README's results block
(summaries, tables, figures, a summary of claims with their verdicts). ``python -m benchmarks.report`` renders it."""
