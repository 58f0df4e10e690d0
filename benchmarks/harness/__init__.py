"""The benchmark harness: suites as data, the methods (slaft and its peers, each through its own library), one
worker process per run, and the JSON Lines records. ``python -m benchmarks.harness --suite NAME`` runs a suite."""
