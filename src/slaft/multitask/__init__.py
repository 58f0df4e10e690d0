"""Multi-task structure learning: one frozen backbone, a shared pool of modules, a learned structure per task.

Names load on first use, so that importing the package costs nothing until a name is used.
"""

from importlib import import_module

_EXPORTS = {
    "MultiTaskConfig": "config", "TaskInfo": "config", "MultiTaskDataset": "data", "TaskBatchSampler": "data",
    "MultiTaskSlaftModel": "model", "MultiTaskTrainer": "training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
