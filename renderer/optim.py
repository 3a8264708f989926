"""The optimisers a config can name, with the reference's base learning rates.

A config's ``learnrate`` scales the base rate, so 1.0 means about the same
step size whichever optimiser is chosen. All four update element by element,
so one optimiser over a stack of N images equals N separate ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class OptimizerDef:
    make: Callable[[list[torch.Tensor], float], torch.optim.Optimizer]
    base_lr: float


OPTIMIZERS: dict[str, OptimizerDef] = {
    # Spelled "rmsprob" in the reference's configs; centred with a little momentum.
    "rmsprob": OptimizerDef(
        lambda p, lr: torch.optim.RMSprop(
            p, lr=lr, alpha=0.99, eps=1e-8, centered=True, momentum=0.1
        ),
        0.003,
    ),
    "adam": OptimizerDef(lambda p, lr: torch.optim.Adam(p, lr=lr), 0.01),
    "sgd": OptimizerDef(lambda p, lr: torch.optim.SGD(p, lr=lr), 10.0),
    "adadelta": OptimizerDef(lambda p, lr: torch.optim.Adadelta(p, lr=lr), 20.0),
}


def available_optimizers() -> list[str]:
    return sorted(OPTIMIZERS)


def learning_rate(name: str, learnrate: float, learnrate_scale: float = 1.0) -> float:
    """The rate handed to torch: base * scale * learnrate."""
    return OPTIMIZERS[name].base_lr * learnrate_scale * learnrate
