"""Side-by-side benchmark of slaft against peft, AdapterHub, BitFit, head-only and full fine-tuning on GLUE.

Run ``python -m benchmarks.harness --suite quick`` and ``python -m benchmarks.report``; see benchmarks/README.md.
"""
