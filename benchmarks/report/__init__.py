"""The benchmark report: from the harness's records to BENCHMARKS.md (summaries, tables, figures, generated
findings). ``python -m benchmarks.report`` renders it."""
