"""The suites as data: which tasks, seeds and methods, and the one training recipe all methods share.

Every method in a suite trains for the same epochs at the same sequence length, batch size, warm-up and schedule;
only the learning rate differs, picked per method and task from the method family's grid on the selection seed.

Protocol 1 (suite ``cpu``) and protocol 2's set-up suites (``pilot-*``, ``epochs2``, ``design2``, ``dev``) are archived
(archive/benchmarks-history/; the git tag benchmarks-protocol1-2-history defines and renders them).
Protocol 2 (``cpu2``): tasks chosen by a pilot, full training sets (SST-2 capped), three epochs
(six on CoLA, where three did not reach a plateau), a head chosen by the pilot, rates picked on a selection seed
that is never reported, grids extended while the best rate sits at an edge, and five reported seeds for LoRA r=8
(q,v) and slaft.
Protocol 3 (``pilot3``, ``pareto``, ``llm``; issue 41): protocol 2's recipe on its four tasks plus MNLI and QNLI
(``tasks.py``), the whole size axis, every method with its own rate search on a new selection seed (200) and new
reported seeds (11, 12, 13) that play no part in any choice; and a decoder (SmolLM2) with the causal-LM objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte")

# Learning-rate grids per method family: three log-spaced values around each library's usual rate.
CPU_GRIDS: dict[str, tuple[float, ...]] = {
    "slaft": (6e-4, 2e-3, 6e-3),       # centred on `slaft train`'s default 2e-3
    "lora": (3e-4, 1e-3, 3e-3),        # LoRA, LoRA-all, AdaLoRA, DoRA
    "ia3": (1e-3, 3e-3, 1e-2),
    "prefix": (3e-3, 1e-2, 3e-2),
    "bottleneck": (3e-4, 1e-3, 3e-3),  # AdapterHub Houlsby, Pfeiffer, parallel, UniPELT, MAM
    "bitfit": (1e-3, 3e-3, 1e-2),
    "head": (1e-3, 3e-3, 1e-2),
    "full": (2e-5, 5e-5, 1e-4),
}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    model: str                                   # slaft short name, local path or hub id
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: float
    max_length: int
    batch_size: int
    lr_grids: dict[str, tuple[float, ...]]
    max_train_samples: dict[str, int] = field(default_factory=dict)   # per task; absent = the whole train set
    max_eval_samples: int | None = None          # caps validation and test (quick suite only)
    methods: tuple[str, ...] | None = None       # None = every registered method
    eval_batch_size: int = 64
    group_by_length: bool = True                 # batches of similar lengths: less padding, same for all methods
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    bf16: bool = False
    device: str = "cpu"
    data_seed: int = 0                           # train subsamples are the same for every seed and method
    latency_batch: int = 32
    latency_repeats: int = 20
    run_timeout_s: int = 3600
    protocol: int = 1
    head: str = "cls"                            # benchmarks/heads.py: "cls" pooler or "mean" pooling
    selection_seed: int | None = None            # None: the first reported seed also picks the rate (protocol 1)
    extend_grids: bool = False                   # add the next rate while the best one sits at an edge of the grid
    max_extensions: int = 3
    more_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # method -> its reported seeds
    eval_each_epoch: bool = False                # record the validation score after every epoch
    epochs_by_task: dict[str, float] = field(default_factory=dict)
    lr_from: dict[str, str] = field(default_factory=dict)  # method -> method whose chosen rate it reuses (ablations)
    tasks_by_method: dict[str, tuple[str, ...]] = field(default_factory=dict)  # method -> its tasks; absent = all
    lr_suite: str | None = None                  # no search: each method takes the rate it chose in this suite
    # Robustness suites (one point of a sweep each): what is swept, noise in training, perturbations in evaluation.
    sweep: str | None = None                     # the axis: sparsity_weight, target_params, label_noise, ...
    label_noise: float = 0.0                     # fraction of training labels replaced (slaft.robustness.noise.label_noise)
    input_noise: str | None = None               # "token" or "embedding" noise on the training inputs
    input_noise_ratio: float = 0.0
    perturbations: tuple[str, ...] = ()          # the validation split scored again on perturbed copies (slaft.robustness.perturb)
    perturbation_rates: tuple[float, ...] = ()
    slaft_settings: dict = field(default_factory=dict)  # SlaftConfig changes for slaft methods; budget_of_lora: x
    # "classification" (a task head on the model) or "causal-lm" (a decoder answers each prompt with the class name,
    # slaft.causal_lm); the worker runs classification only so far (run.py refuses to start a causal-lm suite).
    objective: str = "classification"
    untuned_baseline: bool = False               # also score the untuned model once per task (causal-lm suites)

    @property
    def causal(self) -> bool:
        """True when the model answers each prompt with the class name instead of training a task head."""
        return self.objective == "causal-lm"

    def grid(self, family: str) -> tuple[float, ...]:
        return self.lr_grids[family]

    def runs_on(self, method: str, task: str) -> bool:
        """Whether the suite runs this method on this task (an ablation may be limited to the tasks it is about)."""
        return task in self.tasks_by_method.get(method, self.tasks)

    def seeds_for(self, method: str) -> tuple[int, ...]:
        """The reported seeds of a method."""
        return self.more_seeds.get(method, self.seeds)

    @property
    def picking_seed(self) -> int:
        return self.seeds[0] if self.selection_seed is None else self.selection_seed

    def epochs_for(self, task: str) -> float:
        return self.epochs_by_task.get(task, self.epochs)

    def recipe(self) -> dict:
        """What every record of this suite was trained with (written into each record)."""
        return {"model": self.model, "epochs": self.epochs, "epochs_by_task": dict(self.epochs_by_task),
                "max_length": self.max_length, "head": self.head, "protocol": self.protocol,
                "batch_size": self.batch_size, "selection_seed": self.selection_seed,
                "warmup_ratio": self.warmup_ratio, "weight_decay": self.weight_decay,
                "bf16": self.bf16, "lr_schedule": "linear",
                "group_by_length": self.group_by_length, "max_train_samples": dict(self.max_train_samples),
                **({"label_noise": self.label_noise, "input_noise": self.input_noise,
                    "input_noise_ratio": self.input_noise_ratio, "slaft_settings": dict(self.slaft_settings),
                    "lr_suite": self.lr_suite} if self.sweep else {}),
                **({"objective": self.objective} if self.objective != "classification" else {})}


# What the two pipeline-check suites share: a few steps on tiny subsamples, short sequences, quick latency.
PIPELINE_CHECK = dict(epochs=1, max_length=64, batch_size=16, max_eval_samples=64, latency_batch=8, latency_repeats=5,
                      run_timeout_s=600)

# Protocol 2: MiniLM-L6 on full training sets (SST-2 capped at 10,000 of 67,349 to fit the CPU budget), 3 epochs.
PROTOCOL2 = dict(model="minilm", epochs=3, max_length=128, batch_size=32, max_train_samples={"sst2": 10000},
                 latency_batch=16, latency_repeats=15, run_timeout_s=3600, protocol=2, eval_each_epoch=True)
PILOT_RATES = {family: (rate,) for family, rate in (("lora", 1e-3), ("full", 5e-5))}
# Three epochs left CoLA under-trained: its validation still rose by 4-5 points in the last epoch for every method,
# and epochs2 showed LoRA q,v's CoLA flat from epoch 4 on over 9 epochs (LoRA-all's from epoch 3). STS-B stays at 3:
# its strongest peer, LoRA-all, scored 87.0 after 3 epochs and 86.8 after 6. The 3-epoch CoLA runs are kept as
# suite cpu2-cola3ep.
PROTOCOL2_EPOCHS_BY_TASK = {"cola": 6}


# The peers of protocol 2: the reference, the strongest of protocol 1 (LoRA on every linear, Houlsby), the other method
# that learns where its budget goes (AdaLoRA), two small-budget methods ((IA)³, BitFit) and full fine-tuning. Protocol 1
# measured the rest (DoRA ~ LoRA q,v; Pfeiffer ~ Houlsby at half the size; prefix tuning, parallel adapters, UniPELT,
# MAM and the linear probe below LoRA q,v); leaving them out keeps protocol 2 within the CPU budget. LoRA r=2 (q,v) is
# the hand-chosen structure at a quarter of LoRA r=8 (q,v)'s size, the size of slaft-budget-quarter.
PROTOCOL2_PEERS = ("peft-lora-qv", "peft-lora-qv-r2", "peft-lora-all", "peft-adalora", "peft-ia3", "ah-houlsby",
                   "bitfit", "full-ft")
PROTOCOL2_SLAFT = ("slaft", "slaft-budget-lora", "slaft-budget-quarter")
# slaft at another hand-chosen structure's size, paired with it: the learned structure against LoRA on every linear.
PROTOCOL2_EQUAL_SIZE = {"slaft-budget-lora-all": "peft-lora-all"}
PROTOCOL2_ABLATIONS = ("slaft-gates-budget-lora", "slaft-budget-lora-layer", "slaft-budget-lora-nowarmup",
                       "slaft-budget-lora-reset", "slaft-budget-lora-lora-only", "slaft-fixed-lora-qv",
                       "slaft-budget-lora-lr3")
# The candidate space without the bottleneck adapter in λ mode, against slaft's λ default: whether the budget runs'
# gain from dropping it (slaft-budget-lora-lora-only) holds where the sparsity weight, not a budget, sets the size.
PROTOCOL2_LAMBDA_ABLATIONS = ("slaft-lora-only",)
# The LoRA-only candidate space led on CoLA and SST-2 over its first seeds at LoRA q,v's size: it is a contender for
# slaft's default, so it gets the reported seeds of slaft's own variants (five), paired with LoRA q,v.
CANDIDATE_SPACE_VARIANTS = ("slaft-budget-lora-lora-only", "slaft-budget-quarter-lora-only", "slaft-lora-only")
# The default space at a quarter of LoRA q,v's size (the third size), at slaft-budget-quarter's rates as the
# other default-space runs take the rates of their earlier-space counterparts; on every task, against LoRA r=2 (q,v).
PROTOCOL2_QUARTER_SPACE = ("slaft-budget-quarter-lora-only",)
# One change each against slaft at a quarter of LoRA q,v's size, where LoRA r=2 (q,v) won SST-2 and STS-B: a floor
# that spreads the small budget over the blocks (allocation.select's block_share).
# slaft-fixed-lora-qv-r2 is LoRA r=2 (q,v) itself through slaft's modules at the quarter's rate: no search at all.
# slaft-budget-quarter-lr3 gives the decided structure a rate of its own, three times the search's (the rate
# LoRA r=2 (q,v) chose on SST-2 and STS-B): decided_lr_scale.
PROTOCOL2_QUARTER_ABLATIONS = ("slaft-budget-quarter-spread", "slaft-budget-quarter-even", "slaft-fixed-lora-qv-r2",
                               "slaft-budget-quarter-lr3")
# Where an ablation runs. A design choice (the allocator, where units compete, the candidate space, the decided
# structure's rate at LoRA q,v's size) is measured on every task. A diagnostic asks about one gap and runs where the
# gap is: the schedule probes (no dense start, the optimizer restarted, LoRA q,v through slaft's own modules) on
# SST-2 and STS-B, where LoRA on every linear leads slaft at LoRA q,v's size; the quarter's probes on SST-2 and
# STS-B, the two tasks LoRA r=2 (q,v) won (on CoLA and BBC News slaft's quarter leads it or ties).
GAP_TASKS = ("sst2", "stsb")
PROTOCOL2_DIAGNOSTICS = ("slaft-budget-lora-nowarmup", "slaft-budget-lora-reset", "slaft-fixed-lora-qv",
                         *PROTOCOL2_QUARTER_ABLATIONS)
# Closed where they stood when slaft's default space changed (stop 28): these probe gaps of the earlier space with
# bottleneck adapters (the schedule probes changed SST-2 by +0.0; slaft at LoRA-all's size ran on SST-2 and BBC
# News), so their remaining tasks would measure a space slaft no longer defaults to.
CLOSED_IN_EARLIER_SPACE = {**{m: ("sst2",) for m in ("slaft-budget-lora-nowarmup", "slaft-budget-lora-reset",
                                                      "slaft-fixed-lora-qv")},
                           "slaft-budget-lora-all": ("sst2", "bbcnews")}
# Full fine-tuning leads every adapter, whatever its size, on CoLA (by 4 points) and SST-2, at a lower training loss
# (0.39 against 0.50 on CoLA for every adapter from LoRA q,v's 74k to LoRA-all's 332k parameters). The embedding
# layer is half of MiniLM's weights and no adapter reaches it: full fine-tuning with it frozen, at full fine-tuning's
# rate, on those two tasks, says whether the lead is there or in the blocks.
PEER_DIAGNOSTICS = {"full-ft-frozen-embeddings": ("cola", "sst2")}


# Protocol 2's pilot (archived: archive/benchmarks-history/, suites pilot-cls and pilot-mean) chose the mean-pooling
# head over [CLS] and the tasks below.
PILOT_HEAD = "mean"


PROTOCOL2_GRIDS = {**CPU_GRIDS, "slaft": CPU_GRIDS["lora"]}  # slaft's modules are LoRA's: the same grid
PROTOCOL2_KEPT_TASKS = ("cola", "sst2", "stsb", "bbcnews")  # what the pilot kept (archived suite pilot-mean)

# The smoke suite: every peer, and slaft's two allocators (its other registered variants differ in settings only).
SMOKE_METHODS = ("slaft", "slaft-gates-budget-lora", "peft-lora-qv", "peft-lora-qv-r2", "peft-lora-all", "peft-adalora",
                 "peft-lora-qv-r1", "peft-lora-qv-r4", "peft-lora-qv-r16", "peft-lora-all-r1", "peft-lora-all-r2",
                 "peft-dora", "peft-ia3", "peft-prefix", "ah-houlsby", "ah-pfeiffer", "ah-parallel", "ah-unipelt",
                 "ah-mam", "bitfit", "head-only", "full-ft", "full-ft-frozen-embeddings")

# Robustness and sensitivity (issue 11): slaft in λ mode, LoRA r=8 (q,v) and Houlsby on three protocol-2 tasks,
# three seeds, each method at the rate it chose in cpu2 (no search of their own). robust-clean is the noise-free
# point of both noise sweeps and carries the perturbation suite; its slaft runs (λ mode at the default λ) are also
# that point of the λ sweep, which has no suite of its own. The λ and budget sweeps are slaft's alone. CoLA is
# left out: its label is the sentence's grammaticality, which every perturbation (a typo, a dropped, swapped or
# repeated word) can change, so a perturbed CoLA sentence keeps a label that may no longer hold; the topic of a news
# article, a review's sentiment and, nearly, two sentences' similarity survive a few touched words.
ROBUST = dict(PROTOCOL2, epochs_by_task=PROTOCOL2_EPOCHS_BY_TASK, head=PILOT_HEAD, tasks=("sst2", "stsb", "bbcnews"),
              seeds=(1, 2, 3), lr_grids=PROTOCOL2_GRIDS, lr_suite="cpu2", selection_seed=100, eval_each_epoch=False)
ROBUST_SLAFT = "slaft-lora-only"  # slaft's default: λ mode in the LoRA-only space
ROBUST_METHODS = (ROBUST_SLAFT, "peft-lora-qv", "ah-houlsby")
PERTURBATION_RATES = (0.05, 0.1, 0.2)
NOISE_RATIOS = (0.05, 0.1, 0.15, 0.2)
SPARSITY_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
BUDGETS_OF_LORA = (0.25, 0.5, 1.0, 2.0)


def _robust(name: str, sweep: str, description: str, methods=ROBUST_METHODS, **changes) -> tuple[str, Suite]:
    return name, Suite(name=name, sweep=sweep, methods=methods, description=description, **{**ROBUST, **changes})


def robustness_suites() -> dict[str, Suite]:
    from slaft.config import SlaftConfig
    from slaft.robustness.perturb import KINDS

    default_weight = SlaftConfig().sparsity_weight  # that point of the λ sweep is robust-clean's slaft runs

    suites = [_robust("robust-clean", "perturbation", "No noise; validation also scored on perturbed copies.",
                      perturbations=KINDS, perturbation_rates=PERTURBATION_RATES)]
    suites += [_robust(f"robust-label-{ratio:g}", "label_noise", f"{ratio:.0%} of training labels replaced.",
                       label_noise=ratio) for ratio in NOISE_RATIOS]
    suites += [_robust(f"robust-token-{ratio:g}", "input_noise", f"{ratio:.0%} of training tokens replaced.",
                       input_noise="token", input_noise_ratio=ratio) for ratio in NOISE_RATIOS]
    suites += [_robust(f"robust-lambda-{weight:g}", "sparsity_weight", f"slaft at sparsity weight {weight:g}.",
                       methods=(ROBUST_SLAFT,), slaft_settings={"sparsity_weight": weight})
                for weight in SPARSITY_WEIGHTS if weight != default_weight]
    suites += [_robust(f"robust-budget-{share:g}", "target_params", f"slaft at {share:g}x LoRA q,v's size.",
                       methods=(ROBUST_SLAFT,), slaft_settings={"budget_of_lora": share}) for share in BUDGETS_OF_LORA]
    return dict(suites)


# ---------------------------------------------------------------- protocol 3 (issue 41)
# Selection is kept apart from reporting: every method, slaft's default included, searches its own rate (no lr_from)
# on a selection seed used by no earlier protocol (protocol 2's was 100, its reported seeds 1-5), and the reported
# seeds are new. The pilot's seeds (0-2, at one fixed rate, choosing tasks only) are disjoint from both.
PROTOCOL3_SELECTION_SEED = 200
PROTOCOL3_SEEDS = (11, 12, 13)
PROTOCOL3_PILOT_SEEDS = (0, 1, 2)
# MNLI trains on validation_matched (9,815) and is scored on validation_mismatched (9,832); QNLI trains on 3,963 of
# its 5,463 validation pairs and is scored on the other 1,500 (benchmarks/harness/tasks.py). A run should take at
# most ~15-20 minutes of one core. A first MNLI pilot run on all 9,815 pairs measured ~1.2 s of CPU a step (per-epoch
# scoring of the 9,832 included), ~21 minutes for LoRA (q,v) and so ~30 for slaft (~1.5x): MNLI trains on a seeded
# 6,000 of them (the same for every run), ~13 and ~20 minutes. QNLI's 3,963 (~372 steps) are not capped. SST-2
# keeps protocol 2's 10,000.
PROTOCOL3_NEW_TASKS = ("mnli", "qnli")
PROTOCOL3_TASKS = (*PROTOCOL2_KEPT_TASKS, *PROTOCOL3_NEW_TASKS)
PROTOCOL3_TRAIN_SAMPLES = {**PROTOCOL2["max_train_samples"], "mnli": 6000}
# Background runs share the machine at low priority (nice 19 beside foreground work), so a run's wall time can be
# several times its one-core cost: the timeout only catches a hung worker.
PROTOCOL3_TIMEOUT_S = 4 * 3600
PROTOCOL3 = dict(PROTOCOL2, epochs_by_task=PROTOCOL2_EPOCHS_BY_TASK, head=PILOT_HEAD, protocol=3,
                 run_timeout_s=PROTOCOL3_TIMEOUT_S, max_train_samples=PROTOCOL3_TRAIN_SAMPLES)
# The size axis (LoRA r=8 (q,v) is 73,728 stored parameters on MiniLM-L6): slaft's budget at 1/8 to 2 times it in its
# default space (LoRA sites only), against the hand-chosen structures of those sizes: LoRA (q,v) at r = 1, 2, 4, 8,
# 16 (9k to 147k), LoRA on every linear at r = 1 and 2 (41k, 83k), (IA)³ (14k), BitFit (~30k), and slaft's λ default.
# slaft runs as the library now defaults, with rank components pruned one at a time (rank_block 1), the design that
# design3 and its two replications chose on selection seeds 200-202 (the -rank1 methods); the records of the earlier
# units of two (the methods without the suffix) in this suite are the seed-200 searches that choice compared with.
PARETO_SLAFT_BUDGETS = tuple(f"slaft-budget-{size}-lora-only-rank1" for size in ("eighth", "quarter", "half", "lora",
                                                                                  "double"))
PARETO_PEERS = ("peft-lora-qv-r1", "peft-lora-qv-r2", "peft-lora-qv-r4", "peft-lora-qv", "peft-lora-qv-r16",
                "peft-lora-all-r1", "peft-lora-all-r2", "peft-ia3", "bitfit")
PARETO_LAMBDA = "slaft-lora-only-rank1"  # slaft's λ default
PARETO_METHODS = (*PARETO_SLAFT_BUDGETS, *PARETO_PEERS, PARETO_LAMBDA)
# The decoder: SmolLM2-135M answering each prompt with the class name (slaft.causal_lm). slaft at LoRA r=8 (q,v)'s
# size against LoRA r=8 (q,v), DoRA r=8 (q,v), and LoRA on every linear at the rank closest to that size: on
# SmolLM2 (30 blocks, width 576, feed-forward 1536, grouped k/v of width 192) LoRA r=8 (q,v) is 460,800 parameters
# and LoRA on every linear 305,280 per rank, so r=1 is 0.66x and r=2 1.32x; r=2 is the closer (log scale) and the
# harder peer (more parameters than slaft's budget). The entailment task was to be MNLI if the decoder's pilot
# (llm-pilot) kept it, else QNLI if it kept that: neither separated (PROTOCOL3.md), so the decoder runs two tasks.
LLM_METHODS = ("slaft-budget-lora-lora-only-rank1", "peft-lora-qv", "peft-lora-all-r2", "peft-dora")
LLM_TASKS = ("sst2", "bbcnews")
# The decoder's recipe, sized from measured costs: SmolLM2-135M (fp32, one thread) took ~8 s of CPU a training step of
# 8 SST-2 or MNLI prompts (~95-115 tokens) and ~21 s of 8 BBC News prompts at 256 tokens (~15 s at 192), and ~0.43 s
# to score an SST-2 example (two answers) and ~1.2 s a BBC News one (five answers, 256 tokens). The budget is ~15 h
# of the 2-core machine running two one-thread jobs (~30 core-hours) for 4 methods x 2 tasks x (a 3-rate search,
# about one grid extension in two, 3 seeds) ~ 52 runs and the untuned scores, with slaft's search phase and DoRA
# taken at ~1.4x LoRA's cost: ~2,100 core-seconds a run, ~1,500 for LoRA. So: one epoch at batch 8, at most 192
# tokens (an SST-2 prompt is under 110; a BBC News article is cut to its first ~150 tokens, where its topic is
# plain); 1,000 SST-2 training examples (125 steps, ~17 min) and 400 BBC News ones (50 steps, ~13 min); validation
# and test each capped at their first 400 examples (SST-2's 872 and 1,821; BBC News' ~210 validation articles are
# all scored), ~6 and ~10 min a run. Estimated: SST-2 ~1,450 and BBC News ~1,450 core-seconds a LoRA run, the suite
# ~29 core-hours, ~15 h two at a time. MNLI (~8 s a step, three answers) would add ~26 runs, ~6.5 h two at a time:
# it joins only if a decoder pilot (LoRA r=8 (q,v), 3 seeds) puts it 5 points above the best constant prediction.
LLM_EPOCHS = 1
LLM_MAX_LENGTH = 192
LLM_BATCH = 8
LLM_TRAIN_SAMPLES = {"sst2": 1000, "bbcnews": 400, "mnli": 1000, "qnli": 1000}
LLM_EVAL_SAMPLES = 400
LLM_DESCRIPTION = ("Protocol 3, the decoder: SmolLM2-135M answering each prompt with the class name (causal-LM "
                   "objective, slaft.causal_lm), on SST-2 and BBC News; slaft at LoRA r=8 (q,v)'s size (460,800) "
                   "against LoRA r=8 (q,v), DoRA r=8 (q,v) and LoRA r=2 on every linear (610,560, the nearest "
                   "rank), plus the untuned model's score; one epoch at batch 8, 192 tokens, 1,000 SST-2 and 400 "
                   "BBC News training prompts, the first 400 validation and test examples scored (sized to ~15 h "
                   "two at a time: see LLM_* in suites.py); every method searches its own rate on seed 200, seeds "
                   "11-13 are reported.")


SUITES: dict[str, Suite] = {
    "cpu2": Suite(
        name="cpu2", head=PILOT_HEAD, tasks=PROTOCOL2_KEPT_TASKS, seeds=(1, 2, 3), selection_seed=100,
        extend_grids=True, lr_grids=PROTOCOL2_GRIDS,
        methods=(PROTOCOL2_PEERS + PROTOCOL2_SLAFT + PROTOCOL2_ABLATIONS + tuple(PROTOCOL2_EQUAL_SIZE)
                 + PROTOCOL2_QUARTER_ABLATIONS + PROTOCOL2_QUARTER_SPACE + PROTOCOL2_LAMBDA_ABLATIONS
                 + tuple(PEER_DIAGNOSTICS)),
        more_seeds={m: (1, 2, 3, 4, 5) for m in ("peft-lora-qv", *PROTOCOL2_SLAFT, *CANDIDATE_SPACE_VARIANTS)},
        lr_from={**{m: "slaft-budget-lora" for m in (*PROTOCOL2_ABLATIONS, *PROTOCOL2_EQUAL_SIZE)},
                 **{m: "slaft" for m in PROTOCOL2_LAMBDA_ABLATIONS},
                 **{m: "slaft-budget-quarter" for m in (*PROTOCOL2_QUARTER_ABLATIONS, *PROTOCOL2_QUARTER_SPACE)},
                 "full-ft-frozen-embeddings": "full-ft"},
        epochs_by_task=PROTOCOL2_EPOCHS_BY_TASK,
        tasks_by_method={**{m: GAP_TASKS for m in PROTOCOL2_DIAGNOSTICS}, **PEER_DIAGNOSTICS,
                         **CLOSED_IN_EARLIER_SPACE},
        description="Protocol 2: MiniLM-L6 on the tasks the pilot kept, full training sets (SST-2 capped at "
        "10,000), 3 epochs (6 on CoLA), the mean-pooling head, rates picked on a selection seed, 3 seeds (5 for LoRA "
        "q,v and slaft).", **PROTOCOL2),
    **{f"knob2-{epochs}ep": Suite(
        name=f"knob2-{epochs}ep", head=PILOT_HEAD, tasks=("cola", "sst2"), seeds=(1, 2, 3), methods=("slaft",),
        lr_grids={"slaft": (1e-3,)}, description=f"The knob, not the run length, sets the size: slaft's λ default "
        f"for {epochs} epochs (knob2-3ep and knob2-6ep differ in run length only).", **{**PROTOCOL2, "epochs": epochs})
       for epochs in (3, 6)},
    **robustness_suites(),
    "robust-quick": Suite(
        name="robust-quick", sweep="perturbation", description="Checks the robustness machinery in a minute: label "
        "and token noise in training, two perturbations in evaluation, two methods, a few steps.",
        model="minilm", tasks=("sst2",), seeds=(0,), methods=(ROBUST_SLAFT, "peft-lora-qv"),
        lr_grids={family: grid[1:2] for family, grid in CPU_GRIDS.items()}, max_train_samples={"sst2": 64},
        label_noise=0.2, input_noise="token", input_noise_ratio=0.1, perturbations=("keyboard", "word_delete"),
        perturbation_rates=(0.2,), **PIPELINE_CHECK),
    "quick": Suite(
        name="quick",
        description="Checks the pipeline end to end in a few minutes: 2 tasks, 2 seeds, 4 methods, a few steps each.",
        model="minilm",
        tasks=("rte", "stsb"),
        seeds=(0, 1),
        # A two-value grid for the reference (LoRA) family exercises the search stage; one value elsewhere.
        lr_grids={family: grid[1:] if family == "lora" else grid[1:2] for family, grid in CPU_GRIDS.items()},
        max_train_samples={"rte": 64, "stsb": 64},
        methods=("peft-lora-qv", "slaft-budget-lora", "ah-pfeiffer", "bitfit"),
        **PIPELINE_CHECK,
    ),
    "smoke": Suite(
        name="smoke",
        description="Every peer method and both slaft allocators once (one task, one seed, one rate, a few steps): do "
        "all libraries work?",
        methods=SMOKE_METHODS,
        model="minilm",
        tasks=("stsb",),
        seeds=(0,),
        lr_grids={family: (grid[1],) for family, grid in CPU_GRIDS.items()},
        max_train_samples={"stsb": 64},
        **PIPELINE_CHECK,
    ),
    "gpu": Suite(
        name="gpu",
        description="The same harness on one CUDA device: RoBERTa-base in bf16, full GLUE train sets, three seeds.",
        model="roberta-base",
        tasks=GLUE_TASKS,
        seeds=(0, 1, 2),
        epochs=3,
        max_length=128,
        batch_size=32,
        lr_grids={**CPU_GRIDS, "full": (1e-5, 2e-5, 5e-5)},
        bf16=True,
        device="cuda",
        latency_batch=64,
        latency_repeats=50,
        run_timeout_s=4 * 3600,
    ),
}
SUITES.update({
    "pilot3": Suite(
        name="pilot3", tasks=PROTOCOL3_NEW_TASKS, seeds=PROTOCOL3_PILOT_SEEDS, methods=("peft-lora-qv",),
        lr_grids=PILOT_RATES,
        description="Protocol 3 pilot: do MNLI (6,000 of validation_matched trained, validation_mismatched scored) and "
        "QNLI (3,963 of its validation pairs trained, 1,500 scored) separate methods? As protocol 2's pilot: LoRA r=8 "
        "(q,v) at 1e-3, the mean-pooling head, seeds 0-2 (no part in pareto's choices or reports); a task is kept "
        "when it is at least 5 points above the best constant prediction over the 3 seeds.", **PROTOCOL3),
    "pareto": Suite(
        name="pareto", tasks=PROTOCOL3_TASKS, seeds=PROTOCOL3_SEEDS, selection_seed=PROTOCOL3_SELECTION_SEED,
        extend_grids=True, lr_grids=PROTOCOL2_GRIDS, methods=PARETO_METHODS,
        description="Protocol 3, the size axis: MiniLM-L6 on CoLA, SST-2, STS-B, BBC News, MNLI and QNLI with "
        "protocol 2's recipe (SST-2 capped at 10,000, MNLI at 6,000, 3 epochs, 6 on CoLA, the mean-pooling head); slaft's budget at "
        "1/8, 1/4, 1/2, 1 and 2 times LoRA r=8 (q,v)'s size and its λ default against LoRA (q,v) r=1-16, LoRA on "
        "every linear r=1, 2, (IA)³ and BitFit; every method searches its own rate on seed 200 (grids extended past "
        "an edge); seeds 11-13 are reported and play no part in any choice.", **PROTOCOL3),
    "llm": Suite(
        name="llm", model="smollm2", objective="causal-lm", untuned_baseline=True, tasks=LLM_TASKS,
        seeds=PROTOCOL3_SEEDS, selection_seed=PROTOCOL3_SELECTION_SEED, extend_grids=True, lr_grids=PROTOCOL2_GRIDS,
        methods=LLM_METHODS, protocol=3, head="none", epochs=LLM_EPOCHS, max_length=LLM_MAX_LENGTH,
        batch_size=LLM_BATCH, eval_batch_size=16, max_train_samples=LLM_TRAIN_SAMPLES,
        max_eval_samples=LLM_EVAL_SAMPLES, latency_batch=8, latency_repeats=5, run_timeout_s=PROTOCOL3_TIMEOUT_S,
        description=LLM_DESCRIPTION),
})
# The decoder's entailment pilot: do MNLI and QNLI separate on SmolLM2 (LoRA r=8 (q,v) at 1e-3, seeds 0-2, and the
# untuned model)? The first of them that LoRA puts 5 points above the best constant prediction joins the llm suite.
SUITES["llm-pilot"] = replace(
    SUITES["llm"], name="llm-pilot", tasks=("mnli", "qnli"), seeds=PROTOCOL3_PILOT_SEEDS, selection_seed=None,
    extend_grids=False, lr_grids=PILOT_RATES, methods=("peft-lora-qv",),
    description="Protocol 3's decoder pilot: SmolLM2-135M on MNLI (1,000 training prompts of validation_matched, the "
    "first 400 of validation_mismatched scored) and QNLI (1,000 of its training pairs, the first 400 of its held-out "
    "ones) with the llm suite's recipe, LoRA r=8 (q,v) at 1e-3, seeds 0-2, and the untuned model; the first of the "
    "two that LoRA puts at least 5 points above the best constant prediction joins the llm suite.")
# Issue 41's design choice at the small end of the size axis, on the selection seed only (pareto's seed 200 and
# recipe; the base's runs are pareto's own records of that seed, and at 1/8 and 1/4 this suite's): does the decided structure want a higher
# rate, finer rank units, or more of the run once decided, where slaft trails LoRA (q,v) r=1?
DESIGN3_VARIANTS = (*(f"slaft-budget-{size}-lora-only-{variant}" for size in ("eighth", "quarter")
                       for variant in ("lr3", "rank1", "rank1-lr3", "short", "short-lr3")),
                    *(f"slaft-budget-{size}-lora-only-rank1" for size in ("half", "lora", "double")))
SUITES["design3"] = replace(
    SUITES["pareto"], name="design3", tasks=("stsb",), seeds=(), methods=DESIGN3_VARIANTS, extend_grids=False,
    lr_grids={"slaft": (1e-3, 3e-3)},
    description="Protocol 3's design choice (issue 41), selection seed 200 only: slaft at 1/8 and 1/4 of LoRA r=8 "
    "(q,v)'s size with the decided structure at three times the search's rate, with rank pruned one component at a "
    "time, with a shorter search (decided at 30% of the steps), and pairs of these; compared with the same budgets "
    "as the size axis runs them, at the same rates and seed.")
# The structure a small budget ends with changes from run to run (a different seed, or a rounding difference, picks
# other units), so a variant that leads on seed 200 is run again beside the base on two more selection seeds, 201
# and 202, which are not reported either.
DESIGN3_SEEDS = (201, 202)
for _seed in DESIGN3_SEEDS:
    SUITES[f"design3-s{_seed}"] = replace(
        SUITES["design3"], name=f"design3-s{_seed}", selection_seed=_seed,
        methods=tuple(f"slaft-budget-{size}-lora-only{variant}" for size in ("eighth", "quarter")
                      for variant in ("", "-rank1", "-short")),
        description=f"design3 on selection seed {_seed} (not reported): slaft at 1/8 and 1/4 of LoRA r=8 (q,v)'s "
        "size as the size axis runs it, with rank pruned one component at a time, and with the shorter search.")
# cpu2 as it was before CoLA got 6 epochs, restricted to the CoLA runs recorded then.
SUITES["cpu2-cola3ep"] = replace(
    SUITES["cpu2"], name="cpu2-cola3ep", tasks=("cola",), epochs_by_task={},
    methods=("peft-lora-qv", "peft-lora-all", "slaft-budget-lora"),
    description="cpu2's first CoLA column, at 3 epochs, before the plateau check (epochs2) raised CoLA to 6. Kept as "
    "the evidence for that change; cpu2 reports the 6-epoch runs.")
