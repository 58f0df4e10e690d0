#!/usr/bin/env bash
# Protocol 3 in the order it is run (issue 41), resumable: every line skips the runs already recorded, so the script
# can be stopped at any point and started again. One run at a time on one thread, at low priority, so the machine
# stays usable; lane runs report scores only (their timings are shared-machine timings, flagged parallel_jobs).
#   bash benchmarks/protocol3.sh [python]      e.g. a venv with transformers 4.57.6 and adapters (requirements/transformers4.txt)
# Run it from a snapshot of the code (a `git worktree`), so edits in the working copy do not reach running workers.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
run() { nice -n 19 "$PY" -m benchmarks.harness "$@" --jobs 1 --machine-jobs 2; }
# 1. the pilot: do MNLI and QNLI separate methods (LoRA r=8 (q,v), seeds 0-2)?
run --suite pilot3
# 2. the size axis, one task at a time (its rate searches on seed 200, then seeds 11-13), cheapest tasks first
for task in stsb bbcnews qnli cola sst2 mnli; do
  run --suite pareto --tasks "$task"
done
# 3. the decoder
run --suite llm
