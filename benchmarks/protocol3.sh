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
# 2. slaft's design choice on the selection seeds (issue 41: 200, and 201-202 for the variants that lead on it), with
#    slaft's own rate searches on STS-B's selection seed as the base they are compared with
run --suite design3
run --suite pareto --tasks stsb --stage lr_search --methods slaft-budget-{half,lora,double}-lora-only  # rank1's base
run --suite design3-s201
run --suite design3-s202
run --suite pareto --tasks stsb --stage lr_search
# 3. the size axis one task at a time, cheapest first: every method's rate search on seed 200, then seeds 11-13. A
#    task's numbers are final (and PROTOCOL3.md shows them) once all of its runs are in. slaft's design was chosen
#    on the selection seeds before any of its reported runs (step 2).
for task in stsb bbcnews qnli cola sst2 mnli; do
  run --suite pareto --tasks "$task"
done
# 4. the decoder: the pilot, then every method and the untuned model's score
run --suite llm-pilot
run --suite llm
