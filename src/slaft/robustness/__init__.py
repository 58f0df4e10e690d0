"""Robustness tools around the method: noise injected while training, perturbed copies of evaluation splits, and
`slaft sweep` (one knob over a grid of values and seeds, with its plot).

The character perturbations need the optional extra ``pip install 'slaft[robustness]'`` (nlpaug); it is imported
only when one of them is asked for, so ``import slaft`` and ``slaft train`` work without it. Names load on first
use, so importing this package costs nothing until a name is used.

    slaft.robustness.noise      label_noise, InputNoise, NoiseReport
    slaft.robustness.perturb    perturb_texts, perturb_split, KINDS, MissingDependencyError
    slaft.robustness.sweep      SweepOptions, run_sweep (what `slaft sweep` runs)
    slaft.robustness.plots      plot_sweep
"""

from importlib import import_module

_EXPORTS = {
    "INPUT_NOISE_KINDS": "noise", "InputNoise": "noise", "NoiseReport": "noise", "label_noise": "noise",
    "KINDS": "perturb", "MissingDependencyError": "perturb", "perturb_split": "perturb", "perturb_texts": "perturb",
    "SweepOptions": "sweep", "run_sweep": "sweep", "plot_sweep": "plots",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
