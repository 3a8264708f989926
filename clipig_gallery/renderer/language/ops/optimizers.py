"""The optimisers a config can name, with the reference's base learning rates.

A config's ``learnrate`` scales the base rate, so 1.0 means about the same
step size whichever optimiser is chosen; ``learning_rate`` is the one place
that rule is written. All four update element by element, so one optimiser
over a stack of N images equals N separate ones. Each function takes the
parameters and the rate and returns a torch optimiser.
"""

from __future__ import annotations

import torch

from .registry import Registry

OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("rmsprob", base_lr=0.003)
def rmsprob(params, lr):
    """RMSprop, centred, with a little momentum (spelled "rmsprob" in the reference)."""
    return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8, centered=True, momentum=0.1)


@OPTIMIZERS.register("adam", base_lr=0.01)
def adam(params, lr):
    """Adam with torch's defaults."""
    return torch.optim.Adam(params, lr=lr)


@OPTIMIZERS.register("sgd", base_lr=10.0)
def sgd(params, lr):
    """Plain gradient descent."""
    return torch.optim.SGD(params, lr=lr)


@OPTIMIZERS.register("adadelta", base_lr=20.0)
def adadelta(params, lr):
    """Adadelta with torch's defaults."""
    return torch.optim.Adadelta(params, lr=lr)


def learning_rate(name: str, learnrate: float, learnrate_scale: float = 1.0) -> float:
    """The rate handed to torch: base * scale * learnrate."""
    return OPTIMIZERS[name].base_lr * learnrate_scale * learnrate
