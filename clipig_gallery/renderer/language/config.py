"""CLIPig YAML configs, parsed once into frozen, typed objects.

A config is data: values are numbers, lists, or expressions checked by
``renderer.language.expr`` (no ``eval`` of arbitrary code). Every error names the file
and the key it is about, and is raised before any rendering starts.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import PIL.Image
import yaml

from clipig_gallery.core.textfiles import NotUTF8, load_yaml, read_utf8

from .expr import (
    SIM_VARIABLES,
    TIME_VARIABLES,
    Expression,
    ExpressionError,
    compile_expression,
    time_variables,
)
from .ops.constraints import COMMON_PARAMS, CONSTRAINTS
from .ops.optimizers import OPTIMIZERS, learning_rate
from .ops.registry import Registry
from .ops.transforms import TRANSFORMS
from .params import ParamSpec
from .unsupported import not_supported, unsupported_variable

# Which variables an expression may use, by where it stands.
SCHEDULE_VARS = TIME_VARIABLES
RESOLUTION_VARS = ("resolution", "res", "width", "height")
LEARNRATE_VARS = TIME_VARIABLES + RESOLUTION_VARS
STEP_VARS = LEARNRATE_VARS + ("learnrate", "lr", "learnrate_scale", "lrs")
# Weights also see the running similarity of each view (per feature for a
# feature's weight and scale, the mean of the target's features elsewhere).
WEIGHT_VARS = STEP_VARS + SIM_VARIABLES

FEATURE_LOSSES = ("cosine", "l1", "mae", "l2", "mse")
SELECT_MODES = ("all", "best", "worst", "mix")

# Keys the reference reads that do not change the image; accepted so its
# configs load unchanged, and otherwise ignored.
IGNORED_KEYS = ("verbose", "output", "snapshot_interval")


class ConfigError(ValueError):
    """A config that cannot be rendered; the message names the file and key."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")


# --- values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A numeric parameter: constants, or expressions re-evaluated per epoch."""

    items: tuple[float | int | Expression, ...]
    kind: type = float

    @property
    def constant(self) -> bool:
        return not any(isinstance(i, Expression) for i in self.items)

    def __call__(self, env: Mapping[str, float]) -> tuple:
        return tuple(
            _as_kind(self.kind, i(env)) if isinstance(i, Expression) else i for i in self.items
        )

    def first(self, env: Mapping[str, float]):
        return self(env)[0]


def _as_kind(kind: type, value):
    """An expression's result as the parameter's kind; a tensor of values (an
    expression of the similarity, one per view) stays as it is."""
    return value if hasattr(value, "shape") else kind(value)


@dataclass(frozen=True)
class Moment:
    """A point in training: a fraction of it, or an epoch index."""

    value: float
    is_epoch: bool = False

    def now(self, epoch: int, t: float) -> float:
        return epoch if self.is_epoch else t


def percent_fraction(number: str) -> float:
    """The fraction of training that ``number`` percent means, as the reference computed it.

    The reference computed ``int(n) * 0.01``, which is one ulp above ``n / 100``
    for 35, 41, 47, 57, 69, 70, 82, 83, 94 and 95 percent: a ``start`` there
    becomes active one epoch later when a step lands exactly on it (70% of 11
    epochs: epoch 8, not 7). Integers follow that arithmetic; a non-integer
    percentage such as "12.5%", which the reference refused, is
    ``float(n) * 0.01``. Raises ValueError for anything else.
    """
    try:
        return int(number) * 0.01
    except ValueError:
        return float(number) * 0.01


def is_active(start: Moment, end: Moment, epoch: int, t: float) -> bool:
    """Active unless the start lies ahead or the end lies behind."""
    return not (start.value > start.now(epoch, t) or end.value < end.now(epoch, t))


@dataclass(frozen=True)
class Step:
    """A transform or constraint with its parsed arguments."""

    name: str
    args: Mapping[str, Param | str | None] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        # Read-only, so a parsed config cannot be changed through its steps.
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))

    def __call__(self, env: Mapping[str, float]) -> dict[str, object]:
        return {k: v(env) if isinstance(v, Param) else v for k, v in self.args.items()}

    def __reduce__(self):
        # A config travels to cluster workers pickled; a mapping proxy cannot.
        return (type(self), (self.name, dict(self.args)))


@dataclass(frozen=True)
class Constraint:
    step: Step
    weight: Param
    start: Moment
    end: Moment
    loss: str = "l2"


@dataclass(frozen=True)
class Feature:
    text: str | None  # a text feature, or
    weight: Param
    start: Moment
    end: Moment
    image: Path | None = None  # an image feature: this picture's CLIP features
    loss: str = "cosine"  # cosine, l1 (mae) or l2 (mse)
    scale: Param = field(default_factory=lambda: Param((1.0,)))  # x similarity, for select
    # The picture's content digest, read once (as Init's): hashing reads no file.
    image_digest: str | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self):
        _read_digest(self)

    @property
    def simple(self) -> bool:
        """Cosine loss, unit scale and a weight that does not read the similarity."""
        return self.loss == "cosine" and self.scale.items == (1.0,) and not reads_sim(self.weight)


def reads_sim(param: Param) -> bool:
    """Whether a parameter's expressions read the similarity (so it is per view)."""
    return any(isinstance(i, Expression) and i.names & set(SIM_VARIABLES) for i in param.items)


@dataclass(frozen=True)
class Target:
    batch_size: int
    weight: Param
    start: Moment
    end: Moment
    features: tuple[Feature, ...]
    transforms: tuple[Step, ...]
    constraints: tuple[Constraint, ...]
    select: str = "all"  # all, best, worst or mix (see docs/config-language.md)
    name: str = "target"  # shown in statistics only

    @functools.cached_property
    def simple(self) -> bool:
        """Every feature's loss added as the article's methods do, no weight per view
        (asked every step, so kept)."""
        return (self.select == "all" and all(f.simple for f in self.features)
                and not reads_sim(self.weight)
                and not any(reads_sim(c.weight) for c in self.constraints))

    @property
    def views(self) -> int:
        """Samples per step: the reference computes one when nothing is random."""
        random = any(TRANSFORMS[s.name].random for s in self.transforms)
        return self.batch_size if random else 1


@dataclass(frozen=True)
class Postproc:
    step: Step
    start: Moment
    end: Moment


@dataclass(frozen=True)
class Init:
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.1, 0.1, 0.1)
    resolution: tuple[int, int] | None = None  # (width, height) of the noise
    image: Path | None = None  # start from this picture instead of noise
    # The start image's content digest, read once when the Init is made
    # (also by ``replace``), so that hashing a config never reads a file.
    image_digest: str | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self):
        _read_digest(self)

    @property
    def digest(self) -> str:
        """What of the start counts towards the config hash.

        A start image counts by content, so re-rendering it redoes what was
        continued from it; mean and std are in the template already unless
        set by ``Config.with_init_image``.
        """
        if self.image is None:
            return f"noise {self.mean} {self.std}"
        return f"image {self.image_digest} {self.mean} {self.std}"


def _read_digest(spec) -> None:
    """Set a frozen spec's ``image_digest`` from its ``image`` file, if it has one."""
    if spec.image is not None:
        object.__setattr__(spec, "image_digest", file_digest(Path(spec.image)))


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256, or "missing" if it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


@dataclass(frozen=True)
class Config:
    source: str  # file name, for messages
    epochs: int
    resolution: Param  # (width, height), may vary with time
    optimizer: str
    learnrate: Param
    learnrate_scale: Param
    init: Init
    targets: tuple[Target, ...]
    postproc: tuple[Postproc, ...] = ()
    model: str | None = None
    device: str | None = None
    start_epoch: int = 0  # epochs already done (the first one run is this one)
    # Canonical JSON of the file's data with the prompt left out, for hashing.
    template: str = field(default="", repr=False)

    @property
    def hash(self) -> str:
        """Identifies what renders an image, apart from prompt and seed.

        Computed from values held in memory: the start image was read when
        the config was parsed or ``with_init_image`` was called.
        """
        text = f"{self.template}\nepochs={self.epochs}\ninit={self.init.digest}"
        images = [f.image_digest for t in self.targets for f in t.features if f.image]
        if images:  # image features count by content (configs without them hash as before)
            text += f"\nimages={' '.join(images)}"
        if self.start_epoch:
            text += f"\nstart_epoch={self.start_epoch}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def text_features(self) -> list[tuple[int, int]]:
        """(target, feature) indices of every text feature."""
        return [(i, j) for i, t in enumerate(self.targets) for j, f in enumerate(t.features)
                if f.text is not None]

    @property
    def text(self) -> str:
        """The prompt of a single-feature config."""
        (i, j), = self._single_feature()
        return self.targets[i].features[j].text

    def with_text(self, text: str) -> Config:
        """The same config with its one text feature replaced by ``text``."""
        (i, j), = self._single_feature()
        target = self.targets[i]
        features = list(target.features)
        features[j] = replace(features[j], text=text)
        targets = list(self.targets)
        targets[i] = replace(target, features=tuple(features))
        return replace(self, targets=tuple(targets))

    def with_epochs(self, epochs: int) -> Config:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(self.source, "epochs", f"must be a whole number >= 1, got {epochs!r}")
        return replace(self, epochs=epochs)

    def with_init_image(self, image: Path | None, mean=None, std=None) -> Config:
        """The same config starting from ``image`` (None: noise); reads the image's digest now."""
        init = replace(
            self.init,
            image=image,
            mean=self.init.mean if mean is None else mean,
            std=self.init.std if std is None else std,
        )
        return replace(self, init=init)

    def _single_feature(self):
        found = self.text_features
        if len(found) != 1:
            raise ConfigError(
                self.source,
                "targets",
                f"a prompt can replace the text only in a config with exactly one text "
                f"feature; this one has {len(found)}",
            )
        return found


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch uses, computed from the config alone (no tensors)."""

    epoch: int
    width: int
    height: int
    lr: float
    env: dict[str, float]  # variables for transform, constraint and weight expressions


def plan_epoch(config: Config, epoch: int) -> EpochPlan:
    env = time_variables(epoch, config.epochs)
    width, height = evaluated(config.resolution, env, config.source, "resolution")
    lr_env = {**env, "resolution": width, "res": width, "width": width, "height": height}
    (scale,) = evaluated(config.learnrate_scale, lr_env, config.source, "learnrate_scale")
    (rate,) = evaluated(config.learnrate, lr_env, config.source, "learnrate")
    lr = learning_rate(config.optimizer, rate, scale)
    step_env = {**lr_env, "learnrate": lr, "lr": lr, "learnrate_scale": scale, "lrs": scale}
    return EpochPlan(epoch, int(width), int(height), lr, step_env)


def final_size(config: Config) -> tuple[int, int]:
    """(width, height) of the saved image: the resolution of the last epoch."""
    plan = plan_epoch(config, config.epochs - 1)
    return plan.width, plan.height


def evaluated(param: Param, env: Mapping[str, float], source: str, key: str) -> tuple:
    """``param``'s values at ``env``, or a ConfigError naming ``key`` and the epoch:
    an expression that fails there, or gives a number that is not finite (or one
    too large for a float). A constant was checked when the file was read."""
    if param.constant:
        return param.items
    try:
        values = param(env)
        if all(math.isfinite(v) for v in values if not hasattr(v, "shape")):
            return values
        problem = f"gives {', '.join(map(str, values))}, which is not finite"
    except (ArithmeticError, ValueError) as exc:  # ExpressionError, float(10**400)
        problem = str(exc)
    raise ConfigError(source, key, f"{problem} at epoch {env['epoch']}")


# The longest side an image or a view may have. One view of 16384 x 16384 is
# 3 GiB in float32; a longer side is a mistake, which torch would meet deep in
# a step (an allocation error, or the process killed for memory).
MAX_SIDE = 16384


def check_values(config: Config, target_keys: Sequence[str] = (),
                 postproc_keys: Sequence[str] = (), views: int | None = None) -> None:
    """Refuse, before the first step, values that a step could not run with.

    Every expression is tried at every epoch that runs, where its part of the
    config is active (weights that read the similarity, per view in the step,
    excepted): one that fails or gives a number that is not finite is refused,
    and so are a negative learning rate, an image or view side outside 1 ..
    MAX_SIDE, and values an op's own rules refuse (a crop larger than the
    image it gets, an even edge kernel, a blur kernel reaching past the image,
    ...), constraints' rules if the side of the model's square ``views`` is
    given. Without expressions one epoch is tried, for every part. The keys
    name the targets and post-processing steps as the file has them (a Config
    leaves inactive ones out); by default, their place in ``config``.
    """
    target_keys = target_keys or [f"targets[{i}]" for i in range(len(config.targets))]
    postproc_keys = postproc_keys or [f"postproc[{i}]" for i in range(len(config.postproc))]
    varying = any(not p.constant and not reads_sim(p) for p in _params(config))
    epochs = range(config.start_epoch, config.epochs) if varying else (config.start_epoch,)
    source = config.source
    for epoch in epochs:
        plan = plan_epoch(config, epoch)
        at, env, t = f" at epoch {epoch}" if varying else "", plan.env, plan.env["t"]

        def active(part, epoch=epoch, t=t) -> bool:
            return not varying or is_active(part.start, part.end, epoch, t)

        def weigh(param: Param, key: str, env=env) -> None:
            if not reads_sim(param):
                evaluated(param, env, source, key)

        if plan.lr < 0:
            raise ConfigError(source, "learnrate", f"gives a negative learning rate "
                              f"({plan.lr:g}){at}")
        _check_side(source, "resolution", "is", plan.width, plan.height, at)
        for key, target in zip(target_keys, config.targets, strict=True):
            if not active(target):
                continue
            weigh(target.weight, f"{key}.weight")
            for j, feature in enumerate(target.features):
                if active(feature):
                    weigh(feature.weight, f"{key}.features[{j}].weight")
                    weigh(feature.scale, f"{key}.features[{j}].scale")
            h, w = plan.height, plan.width
            for j, step in enumerate(target.transforms):
                h, w = _follow_rules(source, f"{key}.transforms[{j}].{step.name}", step,
                                     TRANSFORMS, (h, w), env, at)
            for j, c in enumerate(target.constraints):
                if active(c):
                    where = f"{key}.constraints[{j}].{c.step.name}"
                    weigh(c.weight, f"{where}.weight")
                    _follow_rules(source, where, c.step, CONSTRAINTS,
                                  (views, views) if views is not None else None, env, at)
        for key, post in zip(postproc_keys, config.postproc, strict=True):
            if active(post):
                _follow_rules(source, f"{key}.{post.step.name}", post.step, TRANSFORMS,
                              (plan.height, plan.width), env, at)


def _params(config: Config):
    """Every Param of ``config`` that is evaluated per epoch."""
    yield from (config.resolution, config.learnrate, config.learnrate_scale)
    steps = [p.step for p in config.postproc]
    for target in config.targets:
        yield target.weight
        for feature in target.features:
            yield from (feature.weight, feature.scale)
        yield from (c.weight for c in target.constraints)
        steps += [*target.transforms, *(c.step for c in target.constraints)]
    yield from (v for step in steps for v in step.args.values() if isinstance(v, Param))


def _follow_rules(source: str, key: str, step: Step, ops: Registry,
                  size: tuple[int, int] | None, env, at: str) -> tuple[int, int] | None:
    """The (height, width) that ``step`` makes of an image of ``size``, or a
    ConfigError: its values are evaluated, then the op's rules applied (if the
    size is known)."""
    args = {name: evaluated(v, env, source, f"{key}.{name}")
            if isinstance(v, Param) else v for name, v in step.args.items()}
    op = ops[step.name]
    if size is None:
        return None
    h, w = size
    try:
        if op.check is not None:
            op.check(h, w, args)
        if op.size is not None:
            h, w = op.size(h, w, args)
    except ValueError as exc:
        raise ConfigError(source, key, f"{exc}{at}") from None
    if op.size is not None:
        _check_side(source, key, "makes views of", w, h, at)
    return h, w


def _check_side(source: str, key: str, what: str, w: int, h: int, at: str) -> None:
    if min(w, h) < 1 or max(w, h) > MAX_SIDE:
        raise ConfigError(source, key, f"{what} {w}x{h} pixels{at}; a side must be 1 to "
                          f"{MAX_SIDE}")


# --- parsing ----------------------------------------------------------------------


def lies_inside(path: Path, roots: Iterable[Path]) -> bool:
    """``path``, its symbolic links resolved, is in one of ``roots`` (resolved too):
    the rule for every place a config names, pictures and output alike."""
    real = Path(path).resolve()
    return any(real.is_relative_to(Path(root).resolve()) for root in roots)


def load_config(path: str | Path, roots: Sequence[Path] = ()) -> Config:
    """Read and check a YAML config file; ``roots``: more folders its pictures may be in."""
    path = Path(path)
    try:
        text = read_utf8(path)
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except NotUTF8 as exc:
        raise ConfigError(str(path), "", str(exc)) from None
    return parse_config(text, source=str(path), base=path.parent, roots=roots)


def parse_config(text: str, source: str = "<config>", base: Path | None = None,
                 roots: Sequence[Path] = ()) -> Config:
    """Check YAML text and turn it into a Config; ``base`` resolves relative paths.

    A picture a config names (init.image, an image feature) must lie inside
    ``base`` or one of the ``roots`` the user named (see ``_Parser.picture``).
    """
    base = base or Path(".")
    return config_from_data(read_data(text, source), source, base, (base, *roots))


def config_from_data(data, source: str, base: Path, roots: Sequence[Path]) -> Config:
    """Check a config's data (as YAML gives it) and turn it into a Config; relative
    picture names are joined to ``base`` and must then lie inside one of ``roots``."""
    return _Parser(source, base, roots).config(data)


def merge_data(first, second):
    """Two configs' data merged as CLIPig merged its files: mappings key by key,
    lists appended (targets, transforms, and any list value), anything else
    replaced by the second file's value."""
    if not isinstance(first, dict) or not isinstance(second, dict):
        return copy.deepcopy(second)
    merged = copy.deepcopy(first)
    for key, value in second.items():
        old = merged.get(key)
        if isinstance(value, dict):
            merged[key] = merge_data(old if isinstance(old, dict) else {}, value)
        elif isinstance(value, list):
            merged[key] = (list(old) if isinstance(old, list) else []) + copy.deepcopy(value)
        else:
            merged[key] = value
    return merged


def read_data(text: str, source: str) -> dict:
    """One config file's data: a mapping (or nothing), with an error naming the file."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, "", f"malformed YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a mapping, got {_show(data)}")
    return data


def _pictures_from(data: dict, base: Path) -> dict:
    """``data`` with its picture names made relative to ``base`` (the file's folder),
    so that files merged from several folders keep their own."""
    data = copy.deepcopy(data)

    def fix(holder, key):
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, str) and "://" not in value:
            holder[key] = str(base / value)

    def items(holder, key) -> list:  # a value of another shape is the parser's to refuse
        value = holder.get(key) if isinstance(holder, dict) else None
        return value if isinstance(value, list) else []

    fix(data.get("init"), "image")
    for target in items(data, "targets"):
        for feature in items(target, "features"):
            fix(feature, "image")
    return data


def load_configs(sources: Sequence[str], roots: Sequence[Path] = (), stdin=None
                 ) -> tuple[Config, dict]:
    """Read config files (``-``: standard input) and merge them in order, as CLIPig did;
    the Config and the merged data (for keys that say where output goes).

    Pictures are found relative to the file that names them and must lie in
    one of the files' folders (standard input's: the working folder) or in
    ``roots``.
    """
    if not sources:
        raise ConfigError("", "", "no config given")
    merged, folders = {}, []
    for name in sources:
        if name == "-":
            text, base = (stdin.read() if stdin is not None else ""), Path(".")
            source = "<stdin>"
        else:
            path = Path(name)
            try:
                text = read_utf8(path)
            except OSError as exc:
                raise ConfigError(name, "", f"cannot read: {exc.strerror or exc}") from None
            except NotUTF8 as exc:
                raise ConfigError(name, "", str(exc)) from None
            base, source = path.parent, name
        folders.append(base)
        merged = merge_data(merged, _pictures_from(read_data(text, source), base))
    label = " + ".join("<stdin>" if n == "-" else n for n in sources)
    return config_from_data(merged, label, Path("."), (*folders, *roots)), merged


_TOP_KEYS = (
    "epochs", "start_epoch", "resolution", "optimizer", "learnrate", "learnrate_scale", "init",
    "targets", "postproc", "model", "device",
) + IGNORED_KEYS
_TARGET_KEYS = (
    "active", "name", "batch_size", "weight", "start", "end", "select", "feature_scale",
    "features", "transforms", "constraints",
)
_FEATURE_KEYS = ("text", "image", "weight", "start", "end", "loss", "scale")
_INIT_KEYS = ("mean", "std", "resolution", "image")
_POSTPROC_OUTER = ("active", "start", "end")


class _Parser:
    def __init__(self, source: str, base: Path, roots: Sequence[Path] = ()):
        self.source, self.base = source, base
        self.roots = tuple(roots)  # where pictures may be
        # Values every expression is tried with once, before anything runs:
        # the first epoch's time, a 224 image and the optimiser's base rate.
        # (The reference tried all variables at 0, which refuses 224/res and
        # lets 1/(1-ti) through to crash at the first epoch.)
        self.trial_env: dict[str, float] = {}

    def fail(self, key: str, message: str):
        raise ConfigError(self.source, key, message)

    # -- structure

    def mapping(self, value, key: str, allowed: Sequence[str], section: bool = False) -> dict:
        """``value`` as a dict with only ``allowed`` keys.

        ``section`` marks a part of the config's structure (top level, init,
        target, feature, postproc), where CLIPig keys we lack are "not supported".
        """
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {_show(value)}")
        for name in value:
            if name not in allowed:
                where = f"{key}.{name}" if key else str(name)
                if section and (message := not_supported("key", name)):
                    self.fail(where, message)
                self.fail(where, f"unknown key; expected one of {', '.join(allowed)}")
        return value

    def listing(self, value, key: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {_show(value)}")
        return value

    def config(self, data) -> Config:
        data = self.mapping(data, "", _TOP_KEYS, section=True)
        epochs = self.whole(data.get("epochs", 300), "epochs", minimum=1)
        optimizer = data.get("optimizer", "adam")
        if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
            self.fail("optimizer", f"unknown optimizer {optimizer!r}; expected one of "
                      f"{', '.join(OPTIMIZERS.names())}")
        lr = OPTIMIZERS[optimizer].base_lr
        self.trial_env = {
            **time_variables(0, epochs),
            **dict.fromkeys(("resolution", "res", "width", "height"), 224),
            **dict.fromkeys(("learnrate", "lr"), lr),
            **dict.fromkeys(("learnrate_scale", "lrs"), 1.0),
        }
        kept = [(f"targets[{i}]", t)
                for i, t in enumerate(self.listing(data.get("targets"), "targets"))
                if not (isinstance(t, dict) and t.get("active", True) is False)]
        targets = tuple(self.target(t, key) for key, t in kept)
        if not targets or not any(t.features for t in targets):
            self.fail("targets", "needs at least one target with a feature")
        start_epoch = self.whole(data.get("start_epoch", 0), "start_epoch", minimum=0)
        if start_epoch >= epochs:
            self.fail("start_epoch", f"must be below epochs ({epochs}), got {start_epoch}")
        steps = [(f"postproc[{i}]", self.postproc(item, f"postproc[{i}]"))
                 for i, item in enumerate(self.listing(data.get("postproc"), "postproc"))]
        steps = [(key, p) for key, p in steps if p is not None]
        for key in ("model", "device"):
            if key in data and not isinstance(data[key], str):
                self.fail(key, f"expected a string, got {_show(data[key])}")
        config = Config(
            source=self.source,
            epochs=epochs,
            resolution=self.param(data.get("resolution", 224), ParamSpec(int, 2, minimum=1),
                                  "resolution", SCHEDULE_VARS),
            optimizer=optimizer,
            learnrate=self.param(data.get("learnrate", 1.0), ParamSpec(float), "learnrate",
                                 LEARNRATE_VARS),
            learnrate_scale=self.param(data.get("learnrate_scale", 1.0), ParamSpec(float),
                                       "learnrate_scale", LEARNRATE_VARS),
            init=self.init(data.get("init"), "init"),
            targets=targets,
            postproc=tuple(p for _, p in steps),
            model=data.get("model"),
            device=data.get("device"),
            start_epoch=start_epoch,
            template=_template(data),
        )
        check_values(config, [key for key, _ in kept], [key for key, _ in steps])
        return config

    def init(self, value, key: str) -> Init:
        value = self.mapping(value, key, _INIT_KEYS, section=True)
        mean = self.param(value.get("mean", 0.5), ParamSpec(float, 3), f"{key}.mean", ())
        std = self.param(value.get("std", 0.1), ParamSpec(float, 3, minimum=0), f"{key}.std", ())
        resolution = None
        if value.get("resolution") is not None:
            resolution = self.param(value["resolution"], ParamSpec(int, 2, minimum=1),
                                    f"{key}.resolution", ())({})
            _check_side(self.source, f"{key}.resolution", "is", *resolution, "")
        image = None
        if value.get("image") is not None:
            image = self.picture(value["image"], f"{key}.image", "init image")
        return Init(mean=mean({}), std=std({}), resolution=resolution, image=image)

    def target(self, value, key: str) -> Target:
        value = self.mapping(value, key, _TARGET_KEYS, section=True)
        features = tuple(
            self.feature(f, f"{key}.features[{i}]")
            for i, f in enumerate(self.listing(value.get("features"), f"{key}.features"))
        )
        transforms = tuple(
            self.step(t, f"{key}.transforms[{i}]", TRANSFORMS)[0]
            for i, t in enumerate(self.listing(value.get("transforms"), f"{key}.transforms"))
        )
        constraints = tuple(
            self.constraint(c, f"{key}.constraints[{i}]")
            for i, c in enumerate(self.listing(value.get("constraints"), f"{key}.constraints"))
        )
        if "name" in value and not isinstance(value["name"], str):
            self.fail(f"{key}.name", f"expected a string, got {_show(value['name'])}")
        select = self.choice(value.get("select", "all"), f"{key}.select", SELECT_MODES)
        scaling = self.choice(value.get("feature_scale", "equal"), f"{key}.feature_scale",
                              ("equal", "fair"))
        if scaling == "fair":
            self.fail(f"{key}.feature_scale", not_supported("value", "feature_scale: fair"))
        if select == "mix" and all(f.weight.constant for f in features) \
                and sum(f.weight.items[0] for f in features) == 0:
            self.fail(f"{key}.select", "mix divides by the sum of the features' weights, "
                      "which is 0 here")
        if select == "mix" and len({f.loss for f in features}) > 1:
            self.fail(f"{key}.select", "mix compares with one mean feature, so its features "
                      "need one loss; got " + ", ".join(sorted({f.loss for f in features})))
        return Target(
            batch_size=self.whole(value.get("batch_size", 1), f"{key}.batch_size", minimum=1),
            weight=self.param(value.get("weight", 1.0), ParamSpec(float), f"{key}.weight",
                              WEIGHT_VARS),
            start=self.moment(value.get("start", 0.0), f"{key}.start"),
            end=self.moment(value.get("end", 1.0), f"{key}.end"),
            features=features,
            transforms=transforms,
            constraints=constraints,
            select=select,
            name=value.get("name", "target"),
        )

    def feature(self, value, key: str) -> Feature:
        value = self.mapping(value, key, _FEATURE_KEYS, section=True)
        text, image = value.get("text"), None
        if value.get("image") is not None:
            if text is not None:
                self.fail(key, "a feature is a text or an image, not both")
            image = self.picture(value["image"], f"{key}.image", "feature image")
        elif not isinstance(text, str) or not text.strip():
            self.fail(f"{key}.text", f"expected a non-empty text, got {_show(text)}")
        loss = self.choice(value.get("loss", "cosine"), f"{key}.loss", FEATURE_LOSSES)
        return Feature(
            text=text if image is None else None,
            image=image,
            loss={"mae": "l1", "mse": "l2"}.get(loss, loss),
            weight=self.param(value.get("weight", 1.0), ParamSpec(float), f"{key}.weight",
                              WEIGHT_VARS),
            scale=self.param(value.get("scale", 1.0), ParamSpec(float), f"{key}.scale",
                             WEIGHT_VARS),
            start=self.moment(value.get("start", 0.0), f"{key}.start"),
            end=self.moment(value.get("end", 1.0), f"{key}.end"),
        )

    def choice(self, value, key: str, choices: Sequence[str]) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            self.fail(key, f"expected one of {', '.join(choices)}, got {_show(value)}")
        return value.strip().lower()

    def step(self, value, key: str, registry: Registry, outer: Sequence[str] = (),
             extra: Sequence[str] = ()):
        """Parse ``{name: params}`` into a Step.

        ``outer`` are keys allowed beside the name, ``extra`` keys allowed
        beside the parameters (both handled by the caller).
        """
        what = registry.kind
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping like {{name: parameters}}, got {_show(value)}")
        names = [k for k in value if k not in outer]
        if len(names) != 1:
            self.fail(key, f"expected exactly one {what} name, got {names or 'none'}")
        (name,) = names
        if name not in registry:
            message = not_supported(what, name) or f"unknown {what}"
            self.fail(f"{key}.{name}", f"{message}; expected one of "
                      f"{', '.join(registry.names())}")
        definition = registry[name]
        raw = value[name]
        if not isinstance(raw, dict):
            # Shorthand: a bare value sets the first parameter.
            raw = {next(iter(definition.params)): raw}
        return self.step_args(raw, f"{key}.{name}", definition.params, name, extra), value

    def step_args(self, raw: dict, key: str, params: Mapping[str, ParamSpec], name: str,
                  extra: Sequence[str] = ()) -> Step:
        self.mapping(raw, key, tuple(params) + tuple(extra))
        args = {}
        for pname, spec in params.items():
            if pname not in raw or raw[pname] is None:
                if spec.required:
                    self.fail(f"{key}.{pname}", "is required")
                raw_value = spec.default
            else:
                raw_value = raw[pname]
            args[pname] = self.argument(raw_value, spec, f"{key}.{pname}")
        return Step(name, args)

    def argument(self, value, spec: ParamSpec, key: str):
        if value is None:
            return None
        if spec.kind is str:
            if value not in spec.choices:
                self.fail(key, f"expected one of {', '.join(spec.choices)}, got {_show(value)}")
            return value
        return self.param(value, spec, key, STEP_VARS)

    def constraint(self, value, key: str) -> Constraint:
        step, raw = self.step(value, key, CONSTRAINTS, extra=tuple(COMMON_PARAMS))
        name = step.name
        inner = raw[name] if isinstance(raw[name], dict) else {}
        common = self.mapping({k: v for k, v in inner.items() if k in COMMON_PARAMS},
                              f"{key}.{name}", tuple(COMMON_PARAMS))
        if broken := CONSTRAINTS[name].broken_rule(step.args):
            self.fail(f"{key}.{name}", broken)
        loss = common.get("loss", "l2")
        if loss not in COMMON_PARAMS["loss"].choices:
            self.fail(f"{key}.{name}.loss", f"expected l1 or l2, got {_show(loss)}")
        args = dict(step.args)
        args["loss"] = loss
        return Constraint(
            step=Step(name, args),
            weight=self.param(common.get("weight", 1.0), ParamSpec(float),
                              f"{key}.{name}.weight", WEIGHT_VARS),
            start=self.moment(common.get("start", 0.0), f"{key}.{name}.start"),
            end=self.moment(common.get("end", 1.0), f"{key}.{name}.end"),
            loss=loss,
        )

    def postproc(self, value, key: str) -> Postproc | None:
        step, raw = self.step(value, key, TRANSFORMS, outer=_POSTPROC_OUTER)
        if TRANSFORMS[step.name].resizes:
            self.fail(f"{key}.{step.name}", "post-processing takes only transforms that keep "
                      "the size")
        if raw.get("active", True) is False:
            return None
        return Postproc(
            step=step,
            start=self.moment(raw.get("start", 0.0), f"{key}.start"),
            end=self.moment(raw.get("end", 1.0), f"{key}.end"),
        )

    def picture(self, value, key: str, what: str) -> Path:
        """A picture's path: relative to the config, and inside a folder the user named.

        The config's own folder counts as named (the user named the config);
        other folders must be given (``render-config --image-dir``). Symbolic
        links are resolved before the check, so a link cannot lead out.
        A URL is refused: nothing is downloaded for a config.
        """
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a file name, got {_show(value)}")
        if "://" in value:
            self.fail(key, f"{what} {value!r}: URLs are not fetched; save the picture beside "
                      "the config and name the file")
        path = self.base / value
        if not path.is_file():
            self.fail(key, f"{what} not found: {path}")
        real = path.resolve()
        if not lies_inside(real, self.roots):
            folders = ", ".join(str(r) for r in self.roots)
            self.fail(key, f"{what} {value!r} lies outside the config's folder ({folders}); "
                      "name its folder with --image-dir to allow it")
        try:  # the whole file, so that a broken one is met here and not mid-run
            with PIL.Image.open(real) as picture:
                picture.verify()
        except Exception as exc:  # noqa: BLE001 -- PIL raises many kinds for a broken file
            self.fail(key, f"{what} {value!r} cannot be read as an image: {exc}")
        return path

    # -- scalars

    def whole(self, value, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(key, f"expected a whole number >= {minimum}, got {_show(value)}")
        return value

    def moment(self, value, key: str) -> Moment:
        """'50%' is half of training; a float is a fraction; an int an epoch index."""
        original = value
        is_epoch = isinstance(value, int)
        if isinstance(value, str):
            text = value.strip()
            try:
                if text.endswith("%"):
                    value, is_epoch = percent_fraction(text[:-1]), False
                else:
                    value = float(text) if any(c in text for c in ".eE") else int(text)
                    is_epoch = isinstance(value, int)
            except ValueError:
                self.fail(key, f"expected a percentage, fraction or epoch, got {_show(original)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"expected a percentage, fraction or epoch, got {_show(original)}")
        if not math.isfinite(value) or value < 0:
            self.fail(key, f"must be a finite value >= 0, got {_show(original)}")
        return Moment(float(value), is_epoch=is_epoch)

    def param(self, value, spec: ParamSpec, key: str, variables: Sequence[str]) -> Param:
        """A number, a list, or a string of expressions split on commas or spaces."""
        if isinstance(value, (list, tuple)):
            items = list(value)
        elif isinstance(value, str) and spec.length > 1:
            items = value.split(",") if "," in value else value.split()
        else:
            items = [value]
        if len(items) in spec.tiles and spec.length % len(items) == 0:
            items = items * (spec.length // len(items))
        if len(items) != spec.length:
            counts = sorted({*spec.tiles, spec.length})
            expected = " or ".join(str(c) for c in counts)
            self.fail(key, f"expected {expected} value(s), got {len(items)}: {_show(value)}")
        return Param(tuple(self.item(i, spec, key, variables) for i in items), spec.kind)

    def item(self, value, spec: ParamSpec, key: str, variables: Sequence[str]):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.fail(key, f"expected a number or an expression, got {_show(value)}")
        if isinstance(value, str):
            try:
                expr = compile_expression(value, variables, trial=False)
                expr({name: self.trial_env.get(name, 0) for name in expr.names})
            except ExpressionError as exc:
                message = unsupported_variable(value, variables)
                self.fail(key, f"expression {value!r}: {message}" if message else str(exc))
            if not expr.is_constant:
                return expr
            value = expr()
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(key, f"expression {expr.text!r} gives {_show(value)}, not a number")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            self.fail(key, f"must be finite, got {_show(value)}")
        if spec.kind is int:
            if value != int(value):
                self.fail(key, f"expected a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if spec.minimum is not None and value < spec.minimum:
            self.fail(key, f"must be >= {spec.minimum}, got {value!r}")
        return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _template(data: dict) -> str:
    """Canonical JSON of the config with a lone prompt replaced by a marker."""
    data = {k: v for k, v in copy.deepcopy(data).items() if k not in IGNORED_KEYS}
    texts = [
        feature
        for target in data.get("targets") or []
        if isinstance(target, dict) and target.get("active", True) is not False
        for feature in target.get("features") or []
        if isinstance(feature, dict) and "text" in feature
    ]
    if len(texts) == 1:
        texts[0]["text"] = "{prompt}"
    return json.dumps(data, sort_keys=True, default=str)
