"""CLIPig names this renderer lacks are "not supported"; invented names are "unknown"."""

from __future__ import annotations

import pytest

from renderer.language.config import LEARNRATE_VARS, STEP_VARS, ConfigError, parse_config
from renderer.language.ops.constraints import CONSTRAINTS
from renderer.language.ops.transforms import TRANSFORMS
from renderer.language.unsupported import CLIPIG_VARIABLES, NOT_SUPPORTED

BASE = """
epochs: 11
targets:
  - batch_size: 2
    features:
      - text: a cat
    transforms:
      - {transform}
    constraints:
      - {constraint}
"""


def config(transform="noise: 0.1", constraint="saturation: {below: 0.1}", extra=""):
    return BASE.format(transform=transform, constraint=constraint) + extra


def refusal(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    return str(err.value)


def test_a_clipig_transform_is_not_supported():
    message = refusal(config(transform="random_shift: 0 1"))
    assert "transform 'random_shift' from CLIPig is not supported" in message
    assert "targets[0].transforms[0].random_shift" in message
    assert "unknown" not in message


def test_a_clipig_postproc_transform_is_not_supported():
    message = refusal(config(extra="postproc:\n  - edge: {kernel_size: 3}\n"))
    assert "transform 'edge' from CLIPig is not supported" in message


def test_a_clipig_constraint_is_not_supported():
    message = refusal(config(constraint="contrast: {above: 1}"))
    assert "constraint 'contrast' from CLIPig is not supported" in message
    assert "targets[0].constraints[0].contrast" in message


@pytest.mark.parametrize(("extra", "top", "name"), [
    ("    select: best\n", False, "select"),
    ("start_epoch: 3\n", True, "start_epoch"),
])
def test_a_clipig_key_is_not_supported(extra, top, name):
    text = extra + config() if top else config(extra=extra)
    message = refusal(text)
    assert f"key '{name}' from CLIPig is not supported" in message


@pytest.mark.parametrize(("expression", "name"), [
    ("0.1*sim", "sim"), ("0.1*similarity", "similarity"), ("0.1*time", "time"),
    ("0.1*time_inverse3", "time_inverse3"),
])
def test_a_clipig_variable_is_not_supported(expression, name):
    message = refusal(config(transform=f"noise: {expression}"))
    assert f"variable '{name}' from CLIPig is not supported" in message
    assert expression in message


def test_a_clipig_variable_outside_its_place_is_not_supported_there():
    # CLIPig let transforms read the resolution; here they cannot.
    message = refusal(config(transform="noise: 1/res"))
    assert "variable 'res' from CLIPig is not supported in this value" in message


@pytest.mark.parametrize(("text", "what"), [
    (config(transform="wobble: 3"), "unknown transform"),
    (config(constraint="sharpness: {above: 1}"), "unknown constraint"),
    ("colour: 3\n" + config(), "unknown key"),
    (config(extra="    quantize: 3\n"), "unknown key"),
])
def test_an_invented_name_is_unknown(text, what):
    message = refusal(text)
    assert what in message and "not supported" not in message


def test_an_invented_variable_is_refused_without_claiming_clipig_had_it():
    message = refusal(config(transform="noise: 0.1*foo"))
    assert "'foo'" in message and "CLIPig" not in message


def test_the_table_lists_only_what_is_missing():
    assert not set(NOT_SUPPORTED["transform"]) & set(TRANSFORMS)
    assert not set(NOT_SUPPORTED["constraint"]) & set(CONSTRAINTS)
    assert set(NOT_SUPPORTED["variable"]) <= CLIPIG_VARIABLES
    assert not set(NOT_SUPPORTED["variable"]) & (set(STEP_VARS) | set(LEARNRATE_VARS))
    # Everything else CLIPig's expressions had is a variable here somewhere.
    assert CLIPIG_VARIABLES - set(NOT_SUPPORTED["variable"]) <= set(STEP_VARS) | set(
        LEARNRATE_VARS)
