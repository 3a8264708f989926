"""Tests for renderer.language.config: parsing YAML into frozen objects, and refusing bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from clipig_gallery.core.paths import METHODS_DIR, RANKING_DIR
from clipig_gallery.renderer.language.config import (
    Config,
    ConfigError,
    Param,
    load_config,
    parse_config,
)
from clipig_gallery.renderer.language.expr import Expression
from clipig_gallery.renderer.language.ops.constraints import CONSTRAINTS
from clipig_gallery.renderer.language.ops.optimizers import OPTIMIZERS
from clipig_gallery.renderer.language.ops.transforms import TRANSFORMS

DATA_FILES = sorted(METHODS_DIR.glob("*.yaml")) + sorted(RANKING_DIR.glob("*.yaml"))

TARGET = """
targets:
  - features: [{text: a cat}]
"""

SOURCE = "bad-config.yaml"


def parse(text: str) -> Config:
    return parse_config(text, source=SOURCE)


def with_transform(line: str, batch_size: int = 1) -> Config:
    return parse(
        f"epochs: 10\ntargets:\n  - batch_size: {batch_size}\n"
        f"    features: [{{text: a cat}}]\n    transforms:\n      - {line}\n"
    )


def refused(text: str, key: str, base: Path | None = None) -> ConfigError:
    """Parse ``text`` expecting a ConfigError about ``key``; return it."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=SOURCE, base=base)
    error = info.value
    # The user must be able to find the problem: file first, then key path.
    assert error.source == SOURCE
    assert error.key == key
    assert str(error).startswith(f"{SOURCE}: {key}: " if key else f"{SOURCE}: ")
    return error


@pytest.fixture(scope="module")
def method1() -> Config:
    return load_config(METHODS_DIR / "method-1.yaml")


# --- the shipped configs -----------------------------------------------------------------


def test_all_six_data_configs_are_there() -> None:
    assert [p.name for p in DATA_FILES] == [
        "method-1.yaml", "method-2.yaml",
        "method-1-detail.yaml", "method-1-short.yaml",
        "method-2-detail.yaml", "method-2-short.yaml",
    ]


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.stem)
def test_data_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.source == str(path)
    assert config.optimizer == "rmsprob"
    # Each is a single-prompt config, so the gallery can swap its text.
    assert len(config.text_features) == 1
    assert config.text in path.read_text()
    assert config.text not in config.template


def test_method1_top_level(method1: Config) -> None:
    assert method1.epochs == 200
    assert method1.optimizer == "rmsprob"
    assert method1.learnrate({}) == (1.0,)
    assert method1.init.mean == (0.33, 0.33, 0.33)
    assert method1.init.std == (0.03, 0.03, 0.03)
    assert method1.init.resolution == (10, 10)
    assert method1.init.image is None


def test_method1_target(method1: Config) -> None:
    (target,) = method1.targets
    assert target.batch_size == 10
    assert target.views == 10
    assert target.features[0].text == (
        "a cat made of salami. a cat with the texture of a salami."
    )
    names = [s.name for s in target.transforms]
    assert names == ["pad", "random_rotate", "mul", "mean", "noise"]
    pad, rotate, mul, mean, noise = (s({}) for s in target.transforms)
    assert pad["size"] == (32, 32)
    assert pad["mode"] == "edge"
    assert rotate["degree"] == (-30, 30)
    assert rotate["center"] == (0, 1)
    assert mul["rgb"] == (0.5, 0.5, 0.5)
    assert mean["rgb"] == (0.5, 0.5, 0.5)
    assert noise["std"] == pytest.approx((0.1, 0.1, 0.1))
    assert target.constraints == ()


def test_method1_postproc(method1: Config) -> None:
    (post,) = method1.postproc
    assert post.step.name == "blur"
    assert post.step({})["kernel_size"] == (3, 3)
    assert post.end.value == pytest.approx(0.1) and not post.end.is_epoch


# --- value syntax -------------------------------------------------------------------------


def test_space_separated_list() -> None:
    step = with_transform("random_rotate: {degree: -30 30}").targets[0].transforms[0]
    assert step({})["degree"] == (-30.0, 30.0)


def test_comma_separated_list() -> None:
    step = with_transform("mul: '1, 2, 3'").targets[0].transforms[0]
    assert step({})["rgb"] == (1.0, 2.0, 3.0)


def test_yaml_list() -> None:
    step = with_transform("mul: [1, 2, 3]").targets[0].transforms[0]
    assert step({})["rgb"] == (1.0, 2.0, 3.0)
    block = parse(
        "targets:\n  - features: [{text: a}]\n    transforms:\n"
        "      - mul:\n          - 1/2\n          - 0.25\n          - 1\n"
    )
    assert block.targets[0].transforms[0]({})["rgb"] == (0.5, 0.25, 1.0)


def test_single_value_fills_the_list() -> None:
    step = with_transform("noise: 1/10").targets[0].transforms[0]
    assert step({})["std"] == pytest.approx((0.1, 0.1, 0.1))


def test_constant_expression_is_evaluated_at_parse_time() -> None:
    param = with_transform("mul: 1/4").targets[0].transforms[0].args["rgb"]
    assert isinstance(param, Param)
    assert param.constant
    assert param.items == (0.25, 0.25, 0.25)
    assert not any(isinstance(i, Expression) for i in param.items)


def test_time_expression_stays_an_expression() -> None:
    param = with_transform("bwnoise: 1/5*ti").targets[0].transforms[0].args["std"]
    assert not param.constant
    (item,) = param.items
    assert isinstance(item, Expression) and item.text == "1/5*ti"
    assert param({"ti": 0.5}) == pytest.approx((0.1,))


def test_int_parameter_rejects_a_fraction() -> None:
    error = refused(
        "targets:\n  - features: [{text: a}]\n    transforms: [{pad: 2.5}]\n",
        "targets[0].transforms[0].pad.size",
    )
    assert "whole number" in str(error)


def test_wrong_count_names_the_key() -> None:
    error = refused(
        "targets:\n  - features: [{text: a}]\n    transforms: [{mul: 1 2}]\n",
        "targets[0].transforms[0].mul.rgb",
    )
    assert "expected 1 or 3 value(s), got 2" in str(error)


# --- text, hash and template -----------------------------------------------------------------


def test_with_text_replaces_the_prompt_and_keeps_the_hash(method1: Config) -> None:
    other = method1.with_text("a dog made of cheese")
    assert other.text == "a dog made of cheese"
    assert other.targets[0].features[0].text == "a dog made of cheese"
    assert method1.text.startswith("a cat made of salami")  # the original is untouched
    assert other.hash == method1.hash
    # Everything but the prompt is the same object graph.
    assert other.targets[0].transforms == method1.targets[0].transforms
    assert other.epochs == method1.epochs and other.init == method1.init


def test_same_file_with_another_prompt_has_the_same_hash() -> None:
    # Whether the prompt comes from the file or from with_text, the hash
    # must agree, or cached renders would not be found.
    a = parse("epochs: 10\n" + TARGET)
    b = parse("epochs: 10\n" + TARGET.replace("a cat", "a dog"))
    assert a.hash == b.hash
    assert a.with_text("a dog").hash == b.hash


def test_hash_ignores_formatting_and_comments() -> None:
    a = parse("epochs: 10\nlearnrate: 2\n" + TARGET)
    b = parse("# a comment\nlearnrate:   2\nepochs: 10\n" + TARGET)
    assert a.hash == b.hash


def test_with_epochs_changes_the_hash(method1: Config) -> None:
    shorter = method1.with_epochs(20)
    assert shorter.epochs == 20
    assert shorter.hash != method1.hash
    assert method1.with_epochs(200).hash == method1.hash


@pytest.mark.parametrize("epochs", [0, -1, 2.5, True])
def test_with_epochs_rejects_bad_counts(method1: Config, epochs) -> None:
    with pytest.raises(ConfigError) as info:
        method1.with_epochs(epochs)
    assert info.value.key == "epochs"


def test_transform_parameter_changes_the_hash() -> None:
    a = with_transform("noise: 0.1", batch_size=2)
    b = with_transform("noise: 0.2", batch_size=2)
    assert a.hash != b.hash


def test_template_never_contains_the_prompt(method1: Config) -> None:
    assert "salami" not in method1.template
    assert "salami" not in method1.with_text("more salami").template
    assert "{prompt}" in method1.template


def test_with_text_needs_exactly_one_feature() -> None:
    config = parse("targets:\n  - features: [{text: a}, {text: b}]\n")
    with pytest.raises(ConfigError) as info:
        config.with_text("c")
    assert info.value.key == "targets"


def test_inactive_target_does_not_leak_the_prompt_into_the_hash() -> None:
    def config(prompt: str) -> Config:
        return parse(
            f"targets:\n  - features: [{{text: {prompt}}}]\n"
            "  - active: false\n    features: [{text: unused}]\n"
        )

    cat, dog = config("a cat"), config("a dog")
    assert len(cat.text_features) == 1
    assert "a cat" not in cat.template
    assert cat.hash == dog.hash == cat.with_text("a dog").hash


# --- views ------------------------------------------------------------------------------------


def test_views_without_random_transforms_is_one() -> None:
    # Identical views would only repeat the same CLIP call.
    config = parse(
        "targets:\n  - batch_size: 10\n    features: [{text: a}]\n"
        "    transforms: [{pad: {size: 8}}, {mul: 0.5}, {resize: 224}]\n"
    )
    assert config.targets[0].batch_size == 10
    assert config.targets[0].views == 1
    assert parse("targets:\n  - batch_size: 7\n    features: [{text: a}]\n").targets[0].views == 1


def test_views_with_a_random_transform_is_the_batch_size() -> None:
    assert with_transform("noise: 0.1", batch_size=6).targets[0].views == 6


# --- refusals ---------------------------------------------------------------------------------


def test_malformed_yaml_gives_the_line() -> None:
    error = refused("epochs: 10\nfoo: [1, 2\nbar: 3\n", "")
    assert "malformed YAML at line 3" in str(error)


def test_tab_indentation_gives_the_line() -> None:
    error = refused("epochs: 10\ntargets:\n  - features: [{text: a}]\n\tx: 1\n", "")
    assert "line 4" in str(error)


def test_unknown_top_level_key() -> None:
    error = refused("epochs: 10\ncolour: red\n" + TARGET, "colour")
    assert "unknown key" in str(error) and "epochs" in str(error)


def test_unknown_target_key() -> None:
    refused(TARGET + "    colour: red\n", "targets[0].colour")


def test_unknown_transform_lists_the_valid_ones() -> None:
    error = refused(TARGET + "    transforms: [{blurr: 3}]\n", "targets[0].transforms[0].blurr")
    for name in ("blur", "pad", "random_rotate", "noise", "bwnoise"):
        assert name in str(error)
    # all of them, in the order of the public list
    assert str(error).endswith("expected one of " + ", ".join(TRANSFORMS.names()))


def test_unknown_constraint() -> None:
    error = refused(
        TARGET + "    constraints: [{sharpness: 3}]\n", "targets[0].constraints[0].sharpness"
    )
    assert "saturation" in str(error)
    assert str(error).endswith("expected one of " + ", ".join(CONSTRAINTS.names()))


@pytest.mark.parametrize(
    "quote",
    [
        # Plain scalar: splits on the spaces before any expression is checked.
        'mul: "__import__(\'os\').system(\'touch {path}\')"',
        # List item: kept whole, so the expression checker has to refuse it.
        'mul: ["__import__(\'os\').system(\'touch {path}\')"]',
        'bwnoise: ["__import__(\'os\').system(\'touch {path}\')"]',
    ],
)
def test_expression_cannot_run_code(tmp_path: Path, quote: str) -> None:
    marker = tmp_path / "pwned-XYZ"
    line = quote.format(path=marker)
    error = refused(
        TARGET + f"    transforms:\n      - {line}\n",
        f"targets[0].transforms[0].{line.split(':')[0]}.{'rgb' if 'mul' in line else 'std'}",
    )
    assert not marker.exists()
    assert "__import__" in str(error)


def test_expression_checker_refuses_attribute_calls(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    error = refused(
        TARGET + f"    transforms: [{{mul: [\"__import__('os').system('touch {marker}')\"]}}]\n",
        "targets[0].transforms[0].mul.rgb",
    )
    assert not marker.exists()
    assert "not allowed" in str(error)


def test_expression_cannot_open_files() -> None:
    error = refused(
        TARGET + "    transforms: [{mul: \"open('x')\"}]\n", "targets[0].transforms[0].mul.rgb"
    )
    assert "open('x')" in str(error)
    assert "not allowed" in str(error)


@pytest.mark.parametrize("epochs", ["-5", "0", "2.5", "'ten'", "true"])
def test_bad_epochs(epochs: str) -> None:
    error = refused(f"epochs: {epochs}\n" + TARGET, "epochs")
    assert "whole number" in str(error)


def test_missing_init_image(tmp_path: Path) -> None:
    error = refused("init: {image: nope.png}\n" + TARGET, "init.image", base=tmp_path)
    assert "nope.png" in str(error)


def test_init_image_is_resolved_against_the_config_folder(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "start.png")
    path = tmp_path / "c.yaml"
    path.write_text("init: {image: start.png}\n" + TARGET)
    config = load_config(path)
    assert config.init.image == tmp_path / "start.png"
    # Starting from another picture renders something else.
    assert config.hash != config.with_init_image(None).hash


def test_hash_reads_the_init_image_once(tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(start)
    path = tmp_path / "c.yaml"
    path.write_text("init: {image: start.png}\n" + TARGET)
    config = load_config(path)
    continued = config.with_init_image(start, mean=0, std=1)
    before = (config.hash, continued.hash)
    # The content was read when the config was made: hashing reads no file.
    Image.new("RGB", (8, 8), (4, 5, 6)).save(start)
    assert (config.hash, continued.hash) == before
    # A config made after the change sees the new content.
    assert load_config(path).hash != config.hash
    assert config.with_init_image(start, mean=0, std=1).hash != continued.hash
    # A start image that cannot be read counts as "missing", as before.
    start.unlink()
    assert config.with_init_image(start).init.digest.startswith("image missing ")


def test_batch_size_zero() -> None:
    refused(TARGET + "    batch_size: 0\n", "targets[0].batch_size")


def test_degree_with_three_values() -> None:
    error = refused(
        TARGET + "    transforms: [{random_rotate: {degree: 1 2 3}}]\n",
        "targets[0].transforms[0].random_rotate.degree",
    )
    assert "got 3" in str(error)


@pytest.mark.parametrize("body", ["{weight: 2}", "{}", ""])
def test_saturation_needs_a_threshold(body: str) -> None:
    error = refused(
        TARGET + f"    constraints:\n      - saturation: {body}\n",
        "targets[0].constraints[0].saturation",
    )
    assert "above" in str(error) and "below" in str(error)


@pytest.mark.parametrize("name", sorted(n for n, c in CONSTRAINTS.items() if c.needs_one_of))
def test_declared_constraint_rule_is_enforced(name: str) -> None:
    # The rule comes from the constraint's declaration, not from the parser.
    error = refused(TARGET + f"    constraints:\n      - {name}: {{weight: 2}}\n",
                    f"targets[0].constraints[0].{name}")
    assert str(error).endswith("needs 'above' or 'below'")
    parse(TARGET + f"    constraints:\n      - {name}: {{below: 0.5}}\n")


@pytest.mark.parametrize("line", ["pad: {size: 4}", "repeat: 2", "crop: 0 0 .5 .5"])
def test_postproc_takes_no_resizing_transform(line: str) -> None:
    name = line.split(":")[0]
    refused(f"postproc:\n  - {line}\n" + TARGET, f"postproc[0].{name}")


@pytest.mark.parametrize("line", ["noise: 0.1", "random_rotate: {degree: -5 5}",
                                  "random_shift: 0 1", "fnoise: 0.01"])
def test_postproc_takes_random_transforms_as_clipig_did(line: str) -> None:
    name = line.split(":")[0]
    assert parse(f"postproc:\n  - {line}\n" + TARGET).postproc[0].step.name == name


def test_expression_failing_at_the_first_epoch() -> None:
    error = refused(
        TARGET + "    transforms: [{mul: 1/t}]\n", "targets[0].transforms[0].mul.rgb"
    )
    assert "1/t" in str(error) and "ZeroDivisionError" in str(error)


def test_expression_failing_at_the_first_epoch_through_ti() -> None:
    refused(TARGET + "    transforms: [{mul: '1/(1-ti)'}]\n", "targets[0].transforms[0].mul.rgb")


def test_learnrate_may_divide_by_the_resolution() -> None:
    config = parse("learnrate: 224/res\n" + TARGET)
    assert not config.learnrate.constant


def test_unknown_optimizer() -> None:
    error = refused("optimizer: lbfgs\n" + TARGET, "optimizer")
    assert "rmsprob" in str(error)
    # The names come from the optimiser registry.
    assert str(error).endswith("expected one of " + ", ".join(OPTIMIZERS.names()))


@pytest.mark.parametrize("value", ["[adam]", "{adam: 1}", "3"])
def test_optimizer_that_is_not_a_name(value: str) -> None:
    refused(f"optimizer: {value}\n" + TARGET, "optimizer")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_parses(name: str) -> None:
    assert parse(f"optimizer: {name}\n" + TARGET).optimizer == name


def test_a_missing_feature_image_is_refused() -> None:
    refused("targets:\n  - features: [{image: a.png}]\n", "targets[0].features[0].image")


@pytest.mark.parametrize(("content", "said"), [
    (b"not an image", "cannot identify image file"),
    ("truncated", "cannot be read as an image"),  # a PNG cut short
])
@pytest.mark.parametrize(("text", "key"), [
    ("targets:\n  - features: [{image: a.png}]\n", "targets[0].features[0].image"),
    ("init: {image: a.png}\n" + TARGET, "init.image"),
])
def test_a_picture_that_is_not_an_image_is_refused(tmp_path, content, said, text, key):
    if content == "truncated":
        Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "whole.png")
        content = (tmp_path / "whole.png").read_bytes()[:-30]
    (tmp_path / "a.png").write_bytes(content)
    error = refused(text, key, base=tmp_path)
    assert "'a.png' cannot be read as an image: " in str(error) and said in str(error)


@pytest.mark.parametrize("text", ["''", "'   '", "42", "null"])
def test_text_must_be_non_empty(text: str) -> None:
    refused(f"targets:\n  - features: [{{text: {text}}}]\n", "targets[0].features[0].text")


@pytest.mark.parametrize(
    "text",
    [
        "epochs: 10\n",  # no targets
        "targets: []\n",
        "targets:\n  - batch_size: 2\n",  # a target, but nothing to aim at
        "targets:\n  - active: false\n    features: [{text: a}]\n",
        "",  # an empty file
    ],
)
def test_targets_missing(text: str) -> None:
    refused(text, "targets")


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert str(info.value).startswith(str(path))


def test_load_config_reports_the_path_of_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 0\n" + TARGET)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: epochs: ")


# --- values that do not fit, at every epoch -------------------------------------------------

SMALL = "epochs: 11\nresolution: 32\n"  # t = epoch / 10


@pytest.mark.parametrize(("step", "key", "message"), [
    ("random_crop: 48", "random_crop", "crop 48x48 is larger than the image 32x32"),
    ("center_crop: 40 8", "center_crop", "crop 40x8 is larger than the image 32x32"),
    ("crop: 0 0 .01 8", "crop", "the window 0x8 has no pixels"),  # .01 x 32 truncates to 0
    ("edge: {kernel_size: 2}", "edge", "kernel_size must be odd and positive, got (2, 2)"),
    ("edge: {sigma: 0}", "edge", "sigma must be > 0, got (0.0, 0.0)"),
    ("pad: {size: 33, mode: wrap}", "pad",
     "size 33 33 wraps around the 32x32 image more than once"),
    ("repeat: 513 1", "repeat", "makes views of 16416x32 pixels; a side must be 1 to 16384"),
    # torch's reflect padding needs half the kernel inside the image: 63 fits 32, 65 not
    ("blur: {kernel_size: 65 3}", "blur",
     "kernel_size 65 3 is too large for the 32x32 image it gets (at most 63 63)"),
    ("edge: {kernel_size: 3 67}", "edge",
     "kernel_size 3 67 is too large for the 32x32 image it gets (at most 63 63)"),
    # torchvision's RandomAffine, which CLIPig built each step, refused these
    ("random_scale: 0 1.5", "random_scale", "scale must be > 0, got 0 1.5"),
    ("random_scale: -1", "random_scale", "scale must be > 0, got -1 -1"),
    ("random_scale: '1-t, 1'", "random_scale", "scale must be > 0, got 0 1 at epoch 10"),
    ("random_translate: 1.5 .1", "random_translate",
     "offset must be fractions from 0 to 1, got 1.5 0.1"),
    ("random_translate: .1 -.1", "random_translate",
     "offset must be fractions from 0 to 1, got 0.1 -0.1"),
])
def test_a_transform_value_that_does_not_fit_the_image_is_refused(step, key, message):
    error = refused(SMALL + TARGET + f"    transforms: [{{{step}}}]\n",
                    f"targets[0].transforms[0].{key}")
    assert str(error).endswith(f": {message}")


@pytest.mark.parametrize("step", ["random_scale: .01 5", "random_scale: 2 .5",
                                  "random_translate: 0 1", "random_translate: 1"])
def test_random_affine_values_at_their_limits_are_accepted(step):
    # a range may run downwards (uniform draws from it either way), as in torchvision
    parse(SMALL + TARGET + f"    transforms: [{{{step}}}]\n")


def test_the_image_a_transform_gets_is_what_the_steps_before_made():
    # 32 -> pad 8 -> 48: a crop of 48 fits, of 49 does not; repeat 2 doubles it
    parse(SMALL + TARGET + "    transforms: [{pad: 8}, {random_crop: 48}]\n")
    error = refused(SMALL + TARGET + "    transforms: [{pad: 8}, {repeat: 2 1}, "
                    "{center_crop: 97 48}]\n", "targets[0].transforms[2].center_crop")
    assert "larger than the image 96x48" in str(error)


def test_an_expression_is_tried_at_every_epoch_that_runs():
    # int(64 - 100 t): 4 at epoch 6, -6 at epoch 7
    error = refused(SMALL + TARGET + "    transforms: [{resize: 64-t*100}]\n",
                    "targets[0].transforms[0].resize")
    assert str(error).endswith(": size must be >= 1, got -6 -6 at epoch 7")
    # int(100 t - 30): 0 at epoch 3, 10 at epoch 4; epochs before start_epoch do not run
    late = SMALL + TARGET + "    transforms: [{resize: t*100-30}]\n"
    assert "got 0 0 at epoch 3" in str(refused("start_epoch: 3\n" + late,
                                                "targets[0].transforms[0].resize"))
    assert parse("start_epoch: 4\n" + late).start_epoch == 4


@pytest.mark.parametrize(("part", "key"), [
    ("    transforms: [{mul: '1/(t-0.5)'}]\n", "targets[0].transforms[0].mul.rgb"),
    ("    weight: '1/(t-0.5)'\n", "targets[0].weight"),
    ("    constraints: [{saturation: {below: .1, weight: '1/(t-0.5)'}}]\n",
     "targets[0].constraints[0].saturation.weight"),
])
def test_every_expression_is_tried_at_every_epoch_before_the_first(part, key):
    # 3 epochs: t is 0, 0.5, 1
    error = refused("epochs: 3\n" + TARGET + part, key)
    assert str(error).endswith("expression '1/(t-0.5)': evaluation failed with t=0.5: "
                               "ZeroDivisionError: float division by zero at epoch 1")


def test_an_expression_too_large_for_a_float_is_refused_at_its_epoch():
    error = refused("epochs: 3\n" + TARGET + "    transforms: [{mul: '10**(400*t)'}]\n",
                    "targets[0].transforms[0].mul.rgb")
    assert "OverflowError" in str(error) and str(error).endswith(" at epoch 2")
    error = refused("epochs: 3\n" + TARGET + "    transforms: [{mul: '1e308*(1+t)'}]\n",
                    "targets[0].transforms[0].mul.rgb")
    assert str(error).endswith(": gives inf, inf, inf, which is not finite at epoch 2")  # 2e308
    assert "must be finite" in str(refused(TARGET + "    transforms: [{mul: 10**400}]\n",
                                           "targets[0].transforms[0].mul.rgb"))


def test_a_feature_weight_is_tried_only_while_the_feature_is_active():
    # 5 epochs: t is 0, 0.25, 0.5, ...; 1/(t-0.25) fails at epoch 1 only
    text = ("epochs: 5\ntargets:\n  - features:\n      - {text: a, weight: '1/(t-0.25)'"
            "%s}\n")
    assert "at epoch 1" in str(refused(text % "", "targets[0].features[0].weight"))
    assert parse(text % ", start: 50%").targets[0].features[0].start.value == 0.5


def test_a_target_is_checked_only_while_it_is_active():
    # the resolution int(16 + 64 t) grows from 16 to 48 at epoch 5 (t = 0.5)
    grows = "epochs: 11\nresolution: 16+t*64\n" + TARGET + "    transforms: [{random_crop: 48}]\n"
    error = refused(grows, "targets[0].transforms[0].random_crop")
    assert "larger than the image 16x16 at epoch 0" in str(error)
    assert parse(grows + "    start: 50%\n").targets[0].start.value == 0.5
    assert "image 41x41 at epoch 4" in str(refused(grows + "    start: 40%\n",
                                                    "targets[0].transforms[0].random_crop"))


def test_keys_count_the_targets_and_steps_left_out():
    text = (SMALL + "targets:\n  - active: false\n    features: [{text: a}]\n"
            "  - features: [{text: b}]\n    transforms: [{noise: 0.1}, {center_crop: 33}]\n"
            "postproc:\n  - {blur: 3, active: false}\n  - edge: {kernel_size: 4}\n")
    refused(text, "targets[1].transforms[1].center_crop")
    refused(text.replace("center_crop: 33", "center_crop: 32"), "postproc[1].edge")


@pytest.mark.parametrize(("text", "key", "message"), [
    ("learnrate: -1\n", "learnrate", "gives a negative learning rate (-0.01)"),
    ("learnrate: 1-t*2\n", "learnrate", "gives a negative learning rate (-0.002) at epoch 6"),
    ("resolution: 16385 8\n", "resolution", "is 16385x8 pixels; a side must be 1 to 16384"),
    ("resolution: 32-t*40\n", "resolution", "is 0x0 pixels at epoch 8; a side must be 1 to "
     "16384"),
    ("init: {resolution: 20000}\n", "init.resolution", "is 20000x20000 pixels"),
])
def test_a_learning_rate_or_size_no_step_can_use_is_refused(text, key, message):
    error = refused("epochs: 11\n" + text + TARGET, key)
    assert message in str(error)


def test_a_blur_kernel_may_reach_the_whole_image():
    parse(SMALL + TARGET + "    transforms: [{blur: {kernel_size: 63}}]\n")
    parse(SMALL + TARGET + "    transforms: [{blur: {kernel_size: 62}}]\n")  # 62 blurs as 63


def test_constraints_are_checked_on_the_models_views(tiny_clip):
    # Constraints see the views at the model's input size, known once a model is:
    # the check before rendering has it, parsing does not.
    from clipig_gallery.renderer.engine.optimise import BatchRender

    side = tiny_clip.input_resolution
    text = (SMALL + TARGET + "    constraints:\n      - edge_mean: {above: 0.1, kernel_size: "
            f"{2 * side + 1}, start: 50%}}\n")  # (inactive at the first epoch)
    config = parse(text)
    with pytest.raises(ConfigError) as info:
        BatchRender(config, tiny_clip, [0])
    assert str(info.value) == (
        f"{SOURCE}: targets[0].constraints[0].edge_mean: kernel_size {2 * side + 1} "
        f"{2 * side + 1} is too large for the {side}x{side} image it gets "
        f"(at most {2 * side - 1} {2 * side - 1})")
    BatchRender(parse(text.replace(f"{2 * side + 1},", f"{2 * side - 1},")), tiny_clip, [0])


def test_a_config_changed_after_parsing_is_checked_before_rendering(tiny_clip):
    from clipig_gallery.renderer.engine.optimise import BatchRender

    config = parse(SMALL + TARGET + "    transforms: [{random_crop: 32}]\n")
    smaller = dataclasses.replace(config, resolution=Param((16, 16), int))
    with pytest.raises(ConfigError) as info:
        BatchRender(smaller, tiny_clip, [0])
    assert str(info.value) == (f"{SOURCE}: targets[0].transforms[0].random_crop: "
                               "crop 32x32 is larger than the image 16x16")


# --- immutability -------------------------------------------------------------------------------


def test_config_is_frozen(method1: Config) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        method1.epochs = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        method1.targets[0].batch_size = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        method1.init.mean = (0, 0, 0)  # type: ignore[misc]
    assert isinstance(method1.targets, tuple)
    assert isinstance(method1.targets[0].transforms, tuple)


def test_configs_pickle_whole_for_cluster_workers(tmp_path):
    # A worker gets its config pickled: expressions are compiled again there.
    import pickle

    from clipig_gallery.renderer.runs.configs import method_config, ranking_config

    start = tmp_path / "start.png"
    Image.new("RGB", (224, 224), (10, 20, 30)).save(start)
    configs = [method_config(1), method_config(2), method_config(2, 7),
               *(ranking_config(m, k, "a cat made of harp.") for m in (1, 2)
                 for k in ("short", "detail")),
               ranking_config(2, "detail", "x").with_init_image(start)]
    for config in configs:
        again = pickle.loads(pickle.dumps(config))
        assert again == config and again.hash == config.hash
        steps = again.targets[0].transforms  # expressions evaluate as before
        env = {"epoch": 3, "t": 0.3, "ti": 0.7, "t2": 0.09, "t3": 0.027, "t4": 0.0081,
               "t5": 0.00243, "ti2": 0.49, "ti3": 0.343, "ti4": 0.2401, "ti5": 0.16807,
               "learnrate": 1.0, "lr": 1.0, "learnrate_scale": 1.0, "lrs": 1.0}
        assert [s(env) for s in steps] == [s(env) for s in config.targets[0].transforms]


@pytest.mark.parametrize("name", ["methods/method-1", "methods/method-2",
                                  "ranking/method-1-short", "ranking/method-1-detail",
                                  "ranking/method-2-short", "ranking/method-2-detail"])
def test_the_small_test_configs_mirror_the_articles(name):
    """What the plumbing tests render (tests/small.py) differs from the article's
    config in sizes and views only: the same steps in the same order, the same
    optimiser, epochs and schedule windows."""
    from small import FOLDER, SIZE

    from clipig_gallery.renderer.language.config import final_size

    article = load_config(METHODS_DIR.parent / f"{name}.yaml")
    mine = load_config(FOLDER / f"{name}.yaml")
    assert (mine.epochs, mine.optimizer) == (article.epochs, article.optimizer)
    # The same size where the article's is small (method 2's short runs end at 16
    # pixels), else the small one.
    assert final_size(mine) == tuple(min(a, b) for a, b in zip(final_size(article), SIZE,
                                                                strict=True))
    for a, b in ((mine.init.mean, article.init.mean), (mine.init.std, article.init.std)):
        assert a == b
    for ours, theirs in zip(mine.targets, article.targets, strict=True):
        assert ours.views == 2
        assert [s.name for s in ours.transforms] == [s.name for s in theirs.transforms]
        assert [(c.step.name, c.start, c.end) for c in ours.constraints] == \
            [(c.step.name, c.start, c.end) for c in theirs.constraints]
    assert [(p.step.name, p.start, p.end) for p in mine.postproc] == \
        [(p.step.name, p.start, p.end) for p in article.postproc]
