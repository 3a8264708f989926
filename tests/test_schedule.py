"""Schedule facts of the shipped configs: resolutions, start/end moments, learning rates.

Everything here is computed from the config alone (plan_epoch, is_active), so no
CLIP model and no tensors are needed.
"""

from __future__ import annotations

import pytest

from clipig_gallery.core.paths import METHODS_DIR, RANKING_DIR
from clipig_gallery.renderer.language.config import (
    Config,
    is_active,
    load_config,
    parse_config,
    plan_epoch,
)
from clipig_gallery.renderer.language.ops.optimizers import OPTIMIZERS, learning_rate

TARGET = """
targets:
  - features: [{text: a cat}]
"""


def small(text: str) -> Config:
    return parse_config(text + TARGET, source="small.yaml")


def t_of(config: Config, epoch: int) -> float:
    return epoch / max(1, config.epochs - 1)


def first_active(config: Config, start, end) -> int | None:
    for epoch in range(config.epochs):
        if is_active(start, end, epoch, t_of(config, epoch)):
            return epoch
    return None


def resolution_table(config: Config) -> list[tuple[int, int, int]]:
    """(first epoch, width, height) for every resolution the run passes through."""
    table: list[tuple[int, int, int]] = []
    for epoch in range(config.epochs):
        plan = plan_epoch(config, epoch)
        if not table or table[-1][1:] != (plan.width, plan.height):
            table.append((epoch, plan.width, plan.height))
    return table


def optimiser_restarts(config: Config) -> list[int]:
    """Epochs where the engine would build a fresh optimiser.

    Written the way the engine decides it, apart from resolution_table, so
    the two are checked against each other: the engine compares the pixel
    size of each epoch's plan with the previous one and restarts on any change.
    """
    restarts = []
    size = None
    for epoch in range(config.epochs):
        plan = plan_epoch(config, epoch)
        if size is not None and (plan.width, plan.height) != size:
            restarts.append(epoch)
        size = (plan.width, plan.height)
    return restarts


@pytest.fixture(scope="module")
def method1() -> Config:
    return load_config(METHODS_DIR / "method-1.yaml")


@pytest.fixture(scope="module")
def method2() -> Config:
    return load_config(METHODS_DIR / "method-2.yaml")


def ranking(name: str) -> Config:
    return load_config(RANKING_DIR / f"{name}.yaml")


# --- resolution ---------------------------------------------------------------------


def test_method2_resolution_table(method2: Config) -> None:
    assert method2.epochs == 300
    assert resolution_table(method2) == [
        (0, 8, 8), (38, 16, 16), (57, 32, 32), (75, 64, 64), (94, 128, 128), (113, 224, 224),
    ]


@pytest.mark.parametrize(
    ("first", "last", "size"),
    [(0, 37, 8), (38, 56, 16), (57, 74, 32), (75, 93, 64), (94, 112, 128), (113, 299, 224)],
)
def test_method2_resolution_per_epoch(method2: Config, first: int, last: int, size: int) -> None:
    # Both ends of each band, plus the epochs just outside it, pin the
    # boundaries that int(t*16) produces from t = epoch/299.
    for epoch in (first, last):
        plan = plan_epoch(method2, epoch)
        assert (plan.width, plan.height) == (size, size), epoch
    if first > 0:
        assert plan_epoch(method2, first - 1).width != size
    if last < method2.epochs - 1:
        assert plan_epoch(method2, last + 1).width != size


def test_method2_optimiser_restarts_at_table_change_points(method2: Config) -> None:
    assert optimiser_restarts(method2) == [38, 57, 75, 94, 113]
    assert optimiser_restarts(method2) == [e for e, _, _ in resolution_table(method2)[1:]]


def test_method1_keeps_one_resolution(method1: Config) -> None:
    # No resolution key: the default 224 for all 200 epochs, never a restart.
    assert resolution_table(method1) == [(0, 224, 224)]
    assert optimiser_restarts(method1) == []


def test_ranking_method2_short_resolution() -> None:
    config = ranking("method-2-short")
    assert config.epochs == 20
    assert resolution_table(config) == [(0, 8, 8), (8, 16, 16)]
    assert [plan_epoch(config, e).width for e in range(20)] == [8] * 8 + [16] * 12


def test_ranking_method2_detail_grows_in_steps_of_8() -> None:
    config = ranking("method-2-detail")
    table = resolution_table(config)
    assert len(table) == 28
    assert [w for _, w, _ in table] == list(range(8, 225, 8))
    assert all(w == h for _, w, h in table)
    assert table[0] == (0, 8, 8)
    assert table[-1][1:] == (224, 224)
    # 27 size changes after epoch 0, each one a fresh optimiser.
    restarts = optimiser_restarts(config)
    assert len(restarts) == 27
    assert restarts == [e for e, _, _ in table[1:]]


def test_resolution_table_of_non_square_schedule() -> None:
    config = small("epochs: 4\nresolution: ['16 if t < .5 else 32', 8]\n")
    assert resolution_table(config) == [(0, 16, 8), (2, 32, 8)]


# --- start and end moments ------------------------------------------------------------


def test_method1_postproc_blur_ends_at_ten_percent(method1: Config) -> None:
    (post,) = method1.postproc
    assert post.step.name == "blur"
    active = [
        e for e in range(method1.epochs)
        if is_active(post.start, post.end, e, t_of(method1, e))
    ]
    # 19/199 <= 0.1 < 20/199
    assert active == list(range(20))


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("methods/method-2", 150),  # 50%: 149/299 < .5 <= 150/299
        ("ranking/method-1-detail", 210),  # 70%
        ("ranking/method-2-detail", 135),  # 45%
    ],
)
def test_blur_constraint_start_fraction(name: str, first: int) -> None:
    config = load_config(METHODS_DIR.parent / f"{name}.yaml")
    assert config.epochs == 300
    (blur,) = [c for c in config.targets[0].constraints if c.step.name == "blur"]
    assert not blur.start.is_epoch
    assert first_active(config, blur.start, blur.end) == first
    # Once on, it stays on to the end.
    assert all(
        is_active(blur.start, blur.end, e, t_of(config, e)) for e in range(first, config.epochs)
    )


def test_bare_integer_start_is_an_epoch() -> None:
    config = small(
        "epochs: 100\n"
        "postproc:\n"
        "  - blur: 3\n"
        "    start: 50\n"
        "    end: 60\n"
    )
    (post,) = config.postproc
    assert post.start.is_epoch and post.start.value == 50
    active = [e for e in range(100) if is_active(post.start, post.end, e, t_of(config, e))]
    assert active == list(range(50, 61))


def test_float_start_is_a_fraction_not_an_epoch() -> None:
    # 0.5 and 50% mean the same; only a bare integer counts epochs.
    config = small("epochs: 101\npostproc:\n  - blur: 3\n    start: 0.5\n")
    (post,) = config.postproc
    assert not post.start.is_epoch
    assert first_active(config, post.start, post.end) == 50


# --- learning rate ---------------------------------------------------------------------


def test_method_learnrate_one_is_the_rmsprop_base(method1: Config, method2: Config) -> None:
    for config in (method1, method2):
        assert config.optimizer == "rmsprob"
        assert plan_epoch(config, 0).lr == pytest.approx(0.003)
        assert plan_epoch(config, config.epochs - 1).lr == pytest.approx(0.003)


@pytest.mark.parametrize(
    ("optimizer", "lr"), [("rmsprob", 0.003), ("adam", 0.01), ("sgd", 10.0), ("adadelta", 20.0)]
)
def test_base_rate_per_optimizer(optimizer: str, lr: float) -> None:
    config = small(f"epochs: 5\noptimizer: {optimizer}\nlearnrate: 1.0\n")
    assert plan_epoch(config, 0).lr == pytest.approx(lr)
    assert OPTIMIZERS[optimizer].base_lr == pytest.approx(lr)
    assert learning_rate(optimizer, 1.0) == pytest.approx(lr)


def test_ranking_method1_short_doubles_the_rate() -> None:
    config = ranking("method-1-short")
    assert plan_epoch(config, 0).lr == pytest.approx(0.006)


def test_plan_epoch_uses_the_one_learning_rate_rule() -> None:
    config = small("epochs: 7\noptimizer: sgd\nlearnrate: '1 + t'\nlearnrate_scale: '2 - ti'\n")
    for epoch in range(config.epochs):
        t = t_of(config, epoch)
        assert plan_epoch(config, epoch).lr == learning_rate("sgd", 1 + t, 2 - (1 - t))


def test_learnrate_scale_multiplies() -> None:
    config = small("epochs: 5\noptimizer: adam\nlearnrate: 2\nlearnrate_scale: 0.5\n")
    assert plan_epoch(config, 3).lr == pytest.approx(0.01)
    assert learning_rate("adam", 2, 0.5) == pytest.approx(0.01)


def test_learnrate_expression_is_evaluated_per_epoch() -> None:
    # List items are not split on spaces, so the expressions may contain them.
    config = small(
        "epochs: 5\n"
        "optimizer: adam\n"
        "resolution: ['8 if t < .5 else 16', 4]\n"
        "learnrate: ['1 + t * res + width - height']\n"
    )
    assert not config.learnrate.constant
    # t = epoch/4; res == width; height is fixed at 4.
    expected = {0: 1 + 0 + 8 - 4, 1: 1 + 0.25 * 8 + 8 - 4, 2: 1 + 0.5 * 16 + 16 - 4,
                4: 1 + 16 + 16 - 4}
    for epoch, factor in expected.items():
        plan = plan_epoch(config, epoch)
        assert plan.lr == pytest.approx(0.01 * factor), epoch
        # Step expressions see the rate actually used.
        assert plan.env["lr"] == plan.env["learnrate"] == plan.lr


# --- time variables ----------------------------------------------------------------------


@pytest.mark.parametrize("epochs", [2, 20, 200, 300])
def test_t_runs_from_zero_to_exactly_one(epochs: int) -> None:
    config = small(f"epochs: {epochs}\n")
    first, last = plan_epoch(config, 0).env, plan_epoch(config, epochs - 1).env
    assert first["t"] == 0 and first["ti"] == 1
    assert last["t"] == 1.0 and last["ti"] == 0.0
    assert last["epoch"] == epochs - 1
    for epoch in range(epochs):
        env = plan_epoch(config, epoch).env
        assert env["ti"] == pytest.approx(1 - env["t"])
        assert env["t2"] == pytest.approx(env["t"] ** 2)
        assert env["ti3"] == pytest.approx(env["ti"] ** 3)


def test_single_epoch_run_stays_at_t_zero() -> None:
    env = plan_epoch(small("epochs: 1\n"), 0).env
    assert env["t"] == 0 and env["ti"] == 1


def test_bwnoise_fades_out_with_ti(method2: Config) -> None:
    step = method2.targets[0].transforms[-1]
    assert step.name == "bwnoise"
    assert step(plan_epoch(method2, 0).env)["std"] == pytest.approx((0.2,))
    assert step(plan_epoch(method2, 299).env)["std"] == (0.0,)
    # Halfway in time is halfway in strength.
    middle = plan_epoch(method2, 299 // 2).env
    assert step(middle)["std"][0] == pytest.approx(0.2 * middle["ti"])
