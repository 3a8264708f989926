"""The parts of CLIPig's language beyond the article's methods, in the engine.

Feature kinds (image features), feature losses (L1, L2), negative weights,
the feature scale, the select modes, weights that read the similarity, and
start_epoch. Each loss is checked against the same quantity computed here
from the model's features directly, never by the engine's own helpers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipig_gallery.renderer.engine.optimise import BatchRender, render
from clipig_gallery.renderer.language.config import ConfigError, parse_config, plan_epoch
from clipig_gallery.renderer.language.ops.transforms import resize_views

TWO = """
epochs: 4
resolution: 32
targets:
  - batch_size: 1
    {select}
    features:
      - text: a red square
        {first}
      - text: a blue circle
        {second}
"""


def two_features(select="", first="", second="", base=None):
    return parse_config(TWO.format(select=select, first=first, second=second), base=base)


def parts_of(job: BatchRender, epoch: int = 0):
    """Loss, sims and named parts of the first step, and the one view of each image."""
    state = job.start()
    plan = plan_epoch(job.config, epoch)
    with torch.no_grad():
        loss, sims, parts = job._loss(state.pixels, plan)
    # No transforms: a target's one view is the clamped image at CLIP's size.
    res = job.model.input_resolution
    views = resize_views(state.pixels.detach().clamp(0, 1), res, res)
    return loss, sims, parts, views


def cosines(model, views, texts):
    """(N, len(texts)) cosines of each view with each text, from the model directly."""
    with torch.no_grad():
        image = model.encode_views(views)
        text = model.encode_texts(list(texts))
    return image @ text.T, image, text


TEXTS = ("a red square", "a blue circle")


def test_select_all_adds_every_weighted_feature(tiny_clip):
    job = BatchRender(two_features(first="weight: 2", second="weight: -0.5"), tiny_clip, [1, 2])
    loss, _, _, views = parts_of(job)
    cos, _, _ = cosines(tiny_clip, views, TEXTS)
    expected = 2 * (1 - cos[:, 0]) - 0.5 * (1 - cos[:, 1])
    assert torch.allclose(loss, expected, atol=1e-5)


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_select_best_and_worst_take_one_feature_per_view(tiny_clip, mode):
    job = BatchRender(two_features(select=f"select: {mode}", first="weight: 3"), tiny_clip,
                      [1, 2, 3])
    loss, _, _, views = parts_of(job)
    cos, _, _ = cosines(tiny_clip, views, TEXTS)
    pick = cos.argmax(1) if mode == "best" else cos.argmin(1)
    weights = torch.tensor([3.0, 1.0])
    expected = weights[pick] * (1 - cos.gather(1, pick[:, None])[:, 0])
    assert torch.allclose(loss, expected, atol=1e-5)


def test_the_feature_scale_decides_the_selection(tiny_clip):
    # A huge scale on the second feature makes it the best one for every view.
    job = BatchRender(two_features(select="select: best", second="scale: 1000"), tiny_clip,
                      [1, 2])
    loss, _, _, views = parts_of(job)
    cos, _, _ = cosines(tiny_clip, views, TEXTS)
    # scaled similarities: 100 cos1 and 100000 cos2; the larger one is chosen
    second = 1000 * cos[:, 1] > cos[:, 0]
    assert torch.allclose(loss, torch.where(second, 1 - cos[:, 1], 1 - cos[:, 0]), atol=1e-5)
    # the unscaled choice differs for some view, or the scale would prove nothing
    job = BatchRender(two_features(select="select: best"), tiny_clip, [1, 2])
    plain, _, _, _ = parts_of(job)
    assert not torch.allclose(plain, loss)


def test_select_mix_compares_with_the_weighted_mean_feature(tiny_clip):
    job = BatchRender(two_features(select="select: mix", first="weight: 3"), tiny_clip, [1, 2])
    loss, _, _, views = parts_of(job)
    _, image, text = cosines(tiny_clip, views, TEXTS)
    goal = (3 * text[0] + 1 * text[1]) / 4
    expected = 1 - F.cosine_similarity(image, goal[None], dim=-1)
    assert torch.allclose(loss, expected, atol=1e-5)


def test_mix_needs_one_loss_for_all_features_and_weights_that_do_not_cancel():
    with pytest.raises(ConfigError, match="targets\\[0\\].select"):
        two_features(select="select: mix", first="loss: l1")
    with pytest.raises(ConfigError, match="sum of the features' weights"):
        two_features(select="select: mix", first="weight: -1")


@pytest.mark.parametrize("kind, reduce", [
    ("l1", lambda d: d.abs().mean(-1)), ("mae", lambda d: d.abs().mean(-1)),
    ("l2", lambda d: (d ** 2).mean(-1)), ("mse", lambda d: (d ** 2).mean(-1)),
])
def test_feature_losses_l1_and_l2(tiny_clip, kind, reduce):
    job = BatchRender(two_features(first=f"loss: {kind}", second="weight: 0"), tiny_clip, [1])
    loss, _, _, views = parts_of(job)
    _, image, text = cosines(tiny_clip, views, TEXTS)
    assert torch.allclose(loss, 100 * reduce(image - text[0]), atol=1e-5)


def test_a_weight_can_read_the_similarity_of_each_view(tiny_clip):
    job = BatchRender(two_features(first="weight: 1 if sim > 0 else sim / 50",
                                   second="weight: 0"), tiny_clip, [1, 2, 3, 4])
    loss, _, _, views = parts_of(job)
    cos, _, _ = cosines(tiny_clip, views, TEXTS)
    sim = 100 * cos[:, 0]
    weight = torch.where(sim > 0, torch.ones_like(sim), sim / 50)
    assert torch.allclose(loss, weight * (1 - cos[:, 0]), atol=1e-5)


def test_a_constraint_weight_reads_the_mean_similarity(tiny_clip):
    config = parse_config("""
epochs: 2
resolution: 32
targets:
  - features: [{text: a red square}, {text: a blue circle}]
    constraints:
      - mean: {above: 0.9, weight: sim / 100}
""")
    job = BatchRender(config, tiny_clip, [5, 6])
    loss, _, parts, views = parts_of(job)
    cos, _, _ = cosines(tiny_clip, views, TEXTS)
    mean_sim = 100 * cos.mean(1)
    means = views.mean(dim=(2, 3))
    constraint = 100 * ((means - 0.9) ** 2).mean(1)
    assert torch.allclose(parts["constraint:mean"], constraint * mean_sim / 100, atol=1e-4)
    assert torch.allclose(loss, (1 - cos).sum(1) + constraint * mean_sim / 100, atol=1e-4)


def test_the_article_configs_keep_the_plain_path(method_configs):
    assert all(t.simple for c in method_configs.values() for t in c.targets)
    assert not two_features(select="select: best").targets[0].simple


# --- image features ---------------------------------------------------------------------


def _picture(path: Path, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    array = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(array).resize((64, 64), Image.NEAREST).save(path)
    return path


def test_an_image_feature_pulls_the_image_towards_the_picture(tiny_clip, tmp_path):
    _picture(tmp_path / "goal.png", 3)
    config = parse_config("""
epochs: 30
resolution: 48
targets:
  - features: [{image: goal.png}]
""", base=tmp_path)
    start = BatchRender(config, tiny_clip, [1]).start().pixels.detach()
    result = render(config, tiny_clip, [1])
    with torch.no_grad():
        goal = tiny_clip.encode_pictures([tmp_path / "goal.png"])
        res = tiny_clip.input_resolution
        before = tiny_clip.encode_views(resize_views(start.clamp(0, 1), res, res)) @ goal.T
        after = tiny_clip.encode_views(resize_views(result.pixels.clamp(0, 1), res, res)) @ goal.T
    # measured: 0.07 before, 0.97 after (the tiny model is not shift-invariant, so
    # the target has no random transforms)
    assert after.item() > before.item() + 0.5


def test_an_image_feature_counts_by_content(tiny_clip, tmp_path):
    picture = _picture(tmp_path / "goal.png", 3)
    text = "targets:\n  - features: [{image: goal.png}]\n"
    first = parse_config(text, base=tmp_path).hash
    _picture(picture, 4)
    assert parse_config(text, base=tmp_path).hash != first
    assert parse_config(text, base=tmp_path).text_features == []


def test_an_image_outside_the_config_folder_is_refused(tmp_path):
    outside = _picture(tmp_path / "outside.png", 1)
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "link.png").symlink_to(outside)
    for name in ("../outside.png", str(outside), "link.png"):
        with pytest.raises(ConfigError, match="outside the config's folder"):
            parse_config(f"targets:\n  - features: [{{image: '{name}'}}]\n", base=folder)
    # Named with --image-dir, the folder is allowed.
    config = parse_config("targets:\n  - features: [{image: ../outside.png}]\n", base=folder,
                          roots=[tmp_path])
    assert config.targets[0].features[0].image == folder / "../outside.png"


def test_an_image_url_is_refused_without_fetching(tmp_path):
    with pytest.raises(ConfigError, match="URLs are not fetched"):
        parse_config("targets:\n  - features: [{image: 'https://example.com/a.png'}]\n",
                     base=tmp_path)


def test_an_image_feature_renders_beside_a_text_feature(tiny_clip, tmp_path):
    _picture(tmp_path / "goal.png", 3)
    config = parse_config("""
epochs: 3
resolution: 32
targets:
  - features: [{text: a cat}, {image: goal.png, weight: 0.5}]
""", base=tmp_path)
    job = BatchRender(config, tiny_clip, [1, 2], ["a dog", "a fox"])
    # The prompts replace the text feature; the image feature's goal is the
    # picture's features as the clip package's preprocessing gives them, for both.
    with torch.no_grad():
        texts = tiny_clip.encode_texts(["a dog", "a fox"])
        pixels = tiny_clip.preprocess(Image.open(tmp_path / "goal.png").convert("RGB"))
        picture = F.normalize(tiny_clip.model.encode_image(pixels[None]).float(), dim=-1)
    assert torch.allclose(job.goals[0, 0], texts)
    assert torch.allclose(job.goals[0, 1], picture.expand(2, -1))
    result = job.run()
    assert result.images.shape == (2, 3, 32, 32)


# --- start_epoch ------------------------------------------------------------------------


def test_start_epoch_runs_the_remaining_epochs_only(tiny_clip):
    text = "epochs: 5\n{start}resolution: 32\ntargets:\n  - features: [{{text: a cat}}]\n"
    later = parse_config(text.format(start="start_epoch: 3\n"))
    job = BatchRender(later, tiny_clip, [1])
    state = job.start()
    for epoch in (3, 4):
        job.step(state, plan_epoch(later, epoch))
    result = render(later, tiny_clip, [1])
    assert torch.equal(result.pixels, state.pixels.detach().float())
    with pytest.raises(ConfigError, match="start_epoch"):
        parse_config(text.format(start="start_epoch: 5\n"))
    assert parse_config(text.format(start="")).hash != later.hash


# --- every op in a render ---------------------------------------------------------------


def _yaml_args(args: dict) -> str:
    def value(v):
        return "null" if v is None else "[" + ", ".join(str(x) for x in v) + "]"
    return "{" + ", ".join(f"{k}: {value(v)}" for k, v in args.items() if v is not None) + "}"


def _transform_names():
    from clipig_gallery.renderer.language.ops.transforms import TRANSFORMS

    return sorted(TRANSFORMS)


@pytest.mark.parametrize("name", _transform_names())
def test_every_transform_renders_in_a_config(tiny_clip, name):
    from test_transforms import REQUIRED_ARGS

    config = parse_config(f"""
epochs: 2
resolution: 40
targets:
  - batch_size: 2
    features: [{{text: a cat}}]
    transforms:
      - {name}: {_yaml_args(REQUIRED_ARGS[name]) if REQUIRED_ARGS[name] else "{}"}
""")
    result = render(config, tiny_clip, [1, 2])
    assert result.images.shape == (2, 3, 40, 40)
    assert torch.isfinite(result.pixels).all()


def test_every_constraint_renders_in_a_config(tiny_clip):
    from test_constraints import TEST_ARGS

    from clipig_gallery.renderer.language.ops.constraints import CONSTRAINTS

    lines = "\n".join(f"      - {name}: {_yaml_args(TEST_ARGS[name])}"
                      for name in sorted(CONSTRAINTS))
    config = parse_config(f"""
epochs: 2
resolution: 40
targets:
  - batch_size: 2
    features: [{{text: a cat}}]
    transforms: [{{random_shift: 0 1}}]
    constraints:
{lines}
""")
    result = render(config, tiny_clip, [1, 2])
    assert set(result.losses) == {"feature", *(f"constraint:{n}" for n in CONSTRAINTS)}
    assert all(torch.isfinite(v).all() for v in result.losses.values())
