"""Declarations of the parameters a transform or constraint accepts.

The ops in ``renderer.language.ops`` declare their parameters with these, and
``renderer.language.config`` checks a config's values against them. (The parser
imports the ops, and with them torch.)
"""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED = object()


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: numbers (``kind`` int or float, ``length`` of them) or a choice."""

    kind: type  # int, float or str
    length: int = 1
    default: object = REQUIRED  # REQUIRED, None (optional) or a value in YAML form
    choices: tuple[str, ...] = ()  # for str parameters
    minimum: float | None = None  # smallest allowed value of a constant
    # Shorter lists that are repeated up to ``length``: one number is copied to
    # every entry; random_shift also takes 2 numbers (min max) for both axes.
    tiles: tuple[int, ...] = (1,)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED
