"""How a model learns: the train/validate loop (``loop``) and the optimizers, rate groups and
schedules it steps (``recipes``). Nothing here knows about experiments or runs."""
from .loop import Evaluation, best_epoch, evaluate, train_val_model

__all__ = ["Evaluation", "best_epoch", "evaluate", "train_val_model"]
