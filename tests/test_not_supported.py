"""CLIPig names this renderer lacks are "not supported"; invented names are "unknown"."""

from __future__ import annotations

import pytest

from clipig_gallery.renderer.language.config import (
    LEARNRATE_VARS,
    WEIGHT_VARS,
    ConfigError,
    parse_config,
)
from clipig_gallery.renderer.language.ops.constraints import CONSTRAINTS
from clipig_gallery.renderer.language.ops.transforms import TRANSFORMS
from clipig_gallery.renderer.language.unsupported import CLIPIG_VARIABLES, NOT_SUPPORTED

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


def test_every_clipig_transform_is_supported():
    assert not NOT_SUPPORTED["transform"]
    for name in ("border", "crop", "edge", "fnoise", "rnoise", "random_scale", "random_shift",
                 "random_translate", "repeat", "shift"):
        assert name in TRANSFORMS


def test_a_clipig_constraint_is_not_supported():
    message = refusal(config(constraint="noise: {std: 0.1}"))
    assert "constraint 'noise' from CLIPig is not supported" in message
    assert "targets[0].constraints[0].noise" in message
    assert "unknown" not in message


@pytest.mark.parametrize(("extra", "top", "name"), [
    ("    tile: 2\n", False, "tile"),
    ("init:\n  image_tensor: [[[0]]]\n", True, "image_tensor"),
])
def test_a_clipig_key_is_not_supported(extra, top, name):
    text = extra + config() if top else config(extra=extra)
    message = refusal(text)
    assert f"key '{name}' from CLIPig is not supported" in message


def test_fair_feature_scale_is_not_supported_with_its_reason():
    message = refusal(config(extra="    feature_scale: fair\n"))
    assert "targets[0].feature_scale" in message
    assert "'feature_scale: fair' from CLIPig is not supported" in message
    parse_config(config(extra="    feature_scale: equal\n"))


@pytest.mark.parametrize("expression", ["0.1*time", "0.1*time_inverse3", "time_step(0, 1)"])
def test_the_long_time_names_and_time_step_are_variables(expression):
    parsed = parse_config(config(transform=f"bwnoise: {expression}"))
    assert parsed.targets[0].transforms[0].args["std"].items[0].text == expression


def test_the_similarity_is_read_only_in_weights():
    message = refusal(config(transform="noise: 0.1*sim"))
    assert "variable 'sim' from CLIPig is not supported in this value" in message
    parse_config(config(constraint="saturation: {below: 0.1, weight: 1 - sim / 100}"))


def test_a_clipig_variable_outside_its_place_is_not_supported_there():
    # CLIPig let only learnrate and weights read the learning rate's scale, and
    # the schedule of the resolution nothing but the time.
    message = refusal(config(extra="") .replace("epochs: 11", "epochs: 11\nresolution: 8*lr"))
    assert "variable 'lr' from CLIPig is not supported in this value" in message


@pytest.mark.parametrize(("text", "what"), [
    (config(transform="wobble: 3"), "unknown transform"),
    (config(constraint="sharpness: {above: 1}"), "unknown constraint"),
    ("colour: 3\n" + config(), "unknown key"),
    (config(extra="    quantize: 3\n"), "unknown key"),
    (config(constraint="edge_max: {above: 1}"), "unknown constraint"),
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
    assert not set(NOT_SUPPORTED["variable"]) & set(WEIGHT_VARS)
    # Everything CLIPig's expressions had is a variable here somewhere.
    assert CLIPIG_VARIABLES - set(NOT_SUPPORTED["variable"]) <= set(WEIGHT_VARS) | set(
        LEARNRATE_VARS)
