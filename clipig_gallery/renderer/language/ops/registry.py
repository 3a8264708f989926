"""One registry type for every kind of operation a config names.

An ``Op`` is a name with its function, the parameters it accepts
(``ParamSpec``), a one-line doc taken from the function's docstring, and the
rules it declares: whether it draws at random, how it changes the image size,
which values it refuses, which parameters need at least one set, an
optimiser's base rate. The config parser reads the rules from here instead of
repeating them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..params import ParamSpec


@dataclass(frozen=True)
class Op:
    """One named operation and the rules a config must follow to use it."""

    name: str
    fn: Callable
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    random: bool = False  # draws per view; without one, a target needs a single view
    # An op that changes the image size: size(height, width, args), the (height,
    # width) it makes of an image of that size; not allowed in postproc.
    size: Callable | None = None
    # check(height, width, args): raises ValueError for values the op cannot
    # use on an image of that size (the size function raises it too).
    # ``config.check_values`` runs both on every epoch's values before the
    # first step.
    check: Callable | None = None
    needs_one_of: tuple[str, ...] = ()  # parameters of which at least one must be set
    base_lr: float | None = None  # an optimiser's rate for a learnrate of 1
    # A transform that only moves pixels (nearest neighbour): its Sampling,
    # sampling(h, w, views, args, rng, device), so a run of them composes.
    sampling: Callable | None = None

    @property
    def resizes(self) -> bool:
        return self.size is not None

    @property
    def doc(self) -> str:
        """The first line of the function's docstring."""
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    def broken_rule(self, args: Mapping[str, object]) -> str | None:
        """Why parsed ``args`` break one of the op's declared rules, else None."""
        if self.needs_one_of and all(args.get(k) is None for k in self.needs_one_of):
            return "needs " + " or ".join(f"'{k}'" for k in self.needs_one_of)
        return None


class Registry(dict[str, Op]):
    """Name -> Op for one kind ("transform", "constraint", "optimizer")."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str, params: Mapping[str, ParamSpec] | None = None, **rules):
        """Decorator: add the function as ``name`` with its parameters and rules."""

        def wrap(fn):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = Op(name, fn, dict(params or {}), **rules)
            return fn

        return wrap

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self)
