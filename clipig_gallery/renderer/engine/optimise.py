"""The batched optimiser: N prompts of one config rendered together.

The N images are one parameter stack (N, 3, H, W). Each step expands it to
N x views samples, runs the config's transforms on all of them at once with
per-image random streams, encodes every view in one CLIP call and sums the
per-image losses. Images never interact: each one's gradient comes from its
own views only, and the optimisers work element by element.

Order within an epoch follows the reference: schedule, learning rate,
post-processing of the raw pixels, clamp, transforms, CLIP, loss, step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..language.config import Config, EpochPlan, check_values, final_size, is_active, plan_epoch
from ..language.ops.constraints import CONSTRAINTS
from ..language.ops.optimizers import OPTIMIZERS
from ..language.ops.transforms import TRANSFORMS, resize_views
from .clipmodel import ClipModel
from .history import HistoryBuffer, display_size
from .imageio import load_rgb, to_uint8
from .precision import autocast_for, check_precision, default_precision, exact_fp32
from .rng import ImageStreams

# How often (in epochs) the losses are read back for progress reports: reading
# a device tensor waits for the device, so it is never done every step.
DEFAULT_REPORT_EVERY = 10

@dataclass
class OptimState:
    """What changes from step to step: the pixel stack and its optimiser."""

    pixels: torch.Tensor
    optimizer: torch.optim.Optimizer


@dataclass
class Progress:
    """A report every few epochs: mean similarity (100 x cos) per image so far."""

    epoch: int
    epochs: int
    similarity: torch.Tensor  # (N,) on the CPU
    loss: torch.Tensor  # (N,)


@dataclass
class RenderResult:
    images: torch.Tensor  # (N, 3, H, W) uint8 on the CPU, as saved
    pixels: torch.Tensor  # (N, 3, H, W) float: the raw parameter at the end
    seconds: float  # wall time of the whole batch
    similarity: torch.Tensor  # (N,) training similarity of the last step (views, not the PNG)
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # named parts, (N,), last step
    device: str = "cpu"
    precision: str = "fp32"
    history: torch.Tensor | None = None  # (N, frames, 3, h, w) uint8 on the CPU, if asked for


class BatchRender:
    """Render ``len(seeds)`` images of one config; ``texts`` replace its prompt."""

    def __init__(
        self,
        config: Config,
        model: ClipModel,
        seeds: Sequence[int],
        texts: Sequence[str] | None = None,
        init_images: Sequence[Path] | None = None,
        precision: str | None = None,
    ):
        if texts is not None and len(texts) != len(seeds):
            raise ValueError(f"{len(texts)} texts for {len(seeds)} seeds")
        if init_images is not None and len(init_images) != len(seeds):
            raise ValueError(f"{len(init_images)} init images for {len(seeds)} seeds")
        # Before anything is allocated: a ConfigError naming the key.
        check_values(config, views=model.input_resolution)
        self.config = config
        self.model = model
        self.device = model.device
        self.count = len(seeds)
        self.streams = ImageStreams(seeds, self.device)
        self.precision = check_precision(precision or default_precision(self.device))
        self.texts = list(texts) if texts is not None else None
        self.init_images = list(init_images) if init_images is not None else None
        self.goals = self._encode_goals()

    # -- setup

    def _encode_goals(self) -> dict[tuple[int, int], torch.Tensor]:
        """(target, feature) -> (N, D) features of its text or image, encoded once."""
        replaced = set(self.config.text_features) if self.texts is not None else set()
        if len(replaced) > 1:
            self.config.with_text("")  # raises the config's own error
        features = {}
        for ti, target in enumerate(self.config.targets):
            for fi, feature in enumerate(target.features):
                if (ti, fi) in replaced:
                    features[ti, fi] = self.model.encode_texts(self.texts)
                elif feature.image is not None:
                    features[ti, fi] = self.model.encode_pictures([feature.image]).expand(
                        self.count, -1)
                else:
                    features[ti, fi] = self.model.encode_texts([feature.text]).expand(
                        self.count, -1
                    )
        return features

    def _initial_pixels(self, width: int, height: int) -> torch.Tensor:
        init = self.config.init
        mean = torch.tensor(init.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(init.std, device=self.device).view(1, 3, 1, 1)
        images = self.init_images
        if images is None and init.image is not None:
            images = [init.image] * self.count
        if images is not None:
            pixels = torch.stack([load_rgb(p, width, height) for p in images]).to(self.device)
            pixels = pixels * std + mean
        else:
            w0, h0 = init.resolution or (width, height)
            pixels = self.streams.normal(3, h0, w0) * std + mean
            pixels = resize_views(pixels, width, height)
        return pixels.clamp(0, 1)

    def _optimizer(self, pixels: torch.Tensor, lr: float) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.config.optimizer].fn([pixels], lr)

    # -- the loop

    def start(self) -> OptimState:
        """Initial pixels and optimiser for the first epoch (``start_epoch``, 0 by default)."""
        plan = plan_epoch(self.config, self.config.start_epoch)
        pixels = self._initial_pixels(plan.width, plan.height).requires_grad_(True)
        return OptimState(pixels, self._optimizer(pixels, plan.lr))

    def step(self, state: OptimState, plan: EpochPlan):
        """One optimisation step; returns (loss, sims, parts) as device tensors.

        Nothing here reads a value back from the device, so on a GPU the host
        can run ahead and queue the next step.
        """
        if state.pixels.shape[-2:] != (plan.height, plan.width):
            # The reference resizes the raw parameter and starts a fresh
            # optimiser, which drops RMSprop's running averages.
            with torch.no_grad():
                state.pixels = resize_views(state.pixels.detach(), plan.width, plan.height)
            state.pixels.requires_grad_(True)
            state.optimizer = self._optimizer(state.pixels, plan.lr)
        for group in state.optimizer.param_groups:
            group["lr"] = plan.lr
        with exact_fp32(self.device, self.precision):
            self._postprocess(state.pixels, plan)
            loss, sims, parts = self._loss(state.pixels, plan)
            state.optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
        state.optimizer.step()
        return loss.detach(), sims.detach(), parts

    def history_buffer(self, frames: int) -> HistoryBuffer:
        """The preallocated frame stack for a history of ``frames`` frames."""
        return HistoryBuffer(self.count, self.config.epochs,
                             display_size(*final_size(self.config)), self.device, frames)

    def run(
        self,
        progress: Callable[[Progress], None] | None = None,
        report_every: int = DEFAULT_REPORT_EVERY,
        history: int = 0,
    ) -> RenderResult:
        """Every epoch of the config; ``history`` > 0 also keeps that many frames."""
        started = time.perf_counter()
        config = self.config
        state = self.start()
        frames = self.history_buffer(history) if history else None
        if frames is not None:
            frames.capture(0, state.pixels)
        sim_sum = torch.zeros(self.count, device=self.device)
        parts: dict[str, torch.Tensor] = {}
        sims = sim_sum
        first = config.start_epoch
        for epoch in range(first, config.epochs):
            loss, sims, parts = self.step(state, plan_epoch(config, epoch))
            if frames is not None:
                frames.capture(epoch + 1, state.pixels)
            sim_sum = sim_sum + sims
            if progress is not None and (
                (epoch + 1) % report_every == 0 or epoch + 1 == config.epochs
            ):
                mean_sims = (sim_sum / (epoch + 1 - first)).cpu()
                progress(Progress(epoch + 1, config.epochs, mean_sims, loss.cpu()))
        pixels = state.pixels
        with torch.no_grad():
            images = to_uint8(pixels)
        return RenderResult(
            images=images.cpu(),
            pixels=pixels.detach().float().cpu(),
            seconds=time.perf_counter() - started,
            similarity=sims.detach().float().cpu(),
            losses={k: v.detach().float().cpu() for k, v in parts.items()},
            device=str(self.device),
            precision=self.precision,
            history=frames.read() if frames is not None else None,
        )

    @torch.no_grad()
    def _postprocess(self, pixels: torch.Tensor, plan: EpochPlan) -> None:
        t = plan.env["t"]
        for post in self.config.postproc:
            if is_active(post.start, post.end, plan.epoch, t):
                fn = TRANSFORMS[post.step.name].fn
                pixels.copy_(fn(pixels, post.step(plan.env), self.streams))

    def _loss(self, pixels: torch.Tensor, plan: EpochPlan):
        """Per-image loss (N,), mean similarity of the views (N,), named parts."""
        t = plan.env["t"]
        current = pixels.clamp(0, 1)
        res = self.model.input_resolution
        active = [
            (ti, target) for ti, target in enumerate(self.config.targets)
            if is_active(target.start, target.end, plan.epoch, t)
        ]
        views = [self._views(current, target, plan, res) for _, target in active]
        n = self.count
        with autocast_for(self.device, self.precision):
            # One target (every method's): its views as they are, no copy.
            stacked = views[0] if len(views) == 1 else torch.cat(views) if views else None
            encoded = self.model.encode_views(stacked) if views else None
        total = torch.zeros(n, device=self.device)
        parts: dict[str, torch.Tensor] = {}
        sims = torch.zeros(n, device=self.device)
        offset = 0
        for (ti, target), v in zip(active, views, strict=True):
            per_image = target.views
            features = encoded[offset : offset + v.shape[0]]
            offset += v.shape[0]
            if not target.simple:
                target_loss, target_sims = self._general_target_loss(
                    ti, target, features, v, plan, parts)
                sims = sims + target_sims
                total = total + target_loss
                continue
            target_loss = torch.zeros(n, device=self.device)
            for fi, feature in enumerate(target.features):
                text = self.goals[ti, fi].repeat_interleave(per_image, dim=0)
                cos = (features * text).sum(-1).view(n, per_image)
                sims = sims + 100.0 * cos.mean(1) / max(1, len(target.features))
                if is_active(feature.start, feature.end, plan.epoch, t):
                    part = (1.0 - cos).sum(1) * feature.weight.first(plan.env)
                    parts["feature"] = parts.get("feature", 0) + part
                    target_loss = target_loss + part
            for constraint in target.constraints:
                if is_active(constraint.start, constraint.end, plan.epoch, t):
                    fn = CONSTRAINTS[constraint.step.name].fn
                    per_view = fn(v, constraint.step(plan.env)).view(n, per_image)
                    part = per_view.sum(1) * constraint.weight.first(plan.env)
                    key = f"constraint:{constraint.step.name}"
                    parts[key] = parts.get(key, 0) + part
                    target_loss = target_loss + part
            total = total + target_loss * target.weight.first(plan.env)
        return total, sims / max(1, len(active)), parts

    def _general_target_loss(self, ti: int, target, features: torch.Tensor,
                             views: torch.Tensor, plan: EpochPlan, parts: dict):
        """One target's loss (N,) and reported similarity (N,), view by view.

        For targets the article's methods never had: a select mode, L1/L2
        feature losses, a feature scale, or weights that read the similarity
        (``sim``: per feature in its weight and scale, the mean of the
        target's features in constraint and target weights). Every weight is
        a number or an (N, views) tensor; nothing is read back from the device.
        """
        n, per_image, t = self.count, target.views, plan.env["t"]
        env = plan.env
        feats = features.view(n, per_image, -1)
        cosines, sims_f, weights, losses, active = [], [], [], [], []
        for fi, feature in enumerate(target.features):
            goal = self.goals[ti, fi].view(n, 1, -1)
            cos = (feats * goal).sum(-1)  # (N, views)
            raw = 100.0 * cos
            # Each of these is a number, or (N, views) where it reads the similarity.
            scaled = raw * feature.scale.first({**env, "sim": raw, "similarity": raw})
            sims_f.append(scaled)
            cosines.append(cos)
            weights.append(feature.weight.first({**env, "sim": scaled, "similarity": scaled}))
            losses.append(_feature_loss(feature.loss, feats, goal, cos))
            active.append(is_active(feature.start, feature.end, plan.epoch, t))
        count = max(1, len(target.features))
        reported = sum(100.0 * c.mean(1) for c in cosines) / count
        per_view = torch.zeros(n, per_image, device=self.device)
        chosen = [i for i, on in enumerate(active) if on]
        if chosen and target.select == "all":
            per_view = sum(weights[i] * losses[i] for i in chosen)
        elif chosen and target.select in ("best", "worst"):
            candidates = torch.stack([sims_f[i] for i in chosen])  # (A, N, views)
            pick = candidates.argmax(0) if target.select == "best" else candidates.argmin(0)
            weighted = torch.stack([weights[i] * losses[i] for i in chosen])
            per_view = weighted.gather(0, pick.unsqueeze(0)).squeeze(0)
        elif chosen:  # mix: one goal, the weighted mean of the active features
            total_weight = sum(weights[i] for i in chosen)
            goal = sum(_per_view(weights[i]) * self.goals[ti, i].view(n, 1, -1)
                       for i in chosen) / _per_view(total_weight)
            goal = goal.expand(n, per_image, -1)
            kind = target.features[chosen[0]].loss
            cos = torch.nn.functional.cosine_similarity(feats, goal, dim=-1)
            per_view = _feature_loss(kind, feats, goal, cos)
        if chosen:
            parts["feature"] = parts.get("feature", 0) + per_view.sum(1)
        mean_sim = torch.stack(sims_f).mean(0) if sims_f else torch.zeros_like(per_view)
        sim_env = {**env, "sim": mean_sim, "similarity": mean_sim}
        for constraint in target.constraints:
            if is_active(constraint.start, constraint.end, plan.epoch, t):
                fn = CONSTRAINTS[constraint.step.name].fn
                part = fn(views, constraint.step(env)).view(n, per_image)
                part = part * constraint.weight.first(sim_env)
                key = f"constraint:{constraint.step.name}"
                parts[key] = parts.get(key, 0) + part.sum(1)
                per_view = per_view + part
        return (per_view * target.weight.first(sim_env)).sum(1), reported

    def _views(self, current: torch.Tensor, target, plan: EpochPlan, res: int) -> torch.Tensor:
        """The target's transformed views, (N * views, 3, res, res), clamped to [0, 1].

        Until the first random transform every view of an image is the same, so
        those transforms run once per image and the views are made after them
        (method 2's resize and padding: a tenth of the work and memory). A run
        of rotations and crops there composes into one sampling that gathers
        the views straight from the image they share (both methods' rotation,
        method 2's crop): no copy of the image per view, one gather.
        """
        per_image = target.views
        steps = target.transforms
        shared = next((i for i, s in enumerate(steps) if TRANSFORMS[s.name].random), len(steps))
        x = current
        for step in steps[:shared]:
            x = TRANSFORMS[step.name].fn(x, step(plan.env), self.streams)
        streams = self.streams.with_views(per_image)
        sampling, views = None, self.count * per_image
        for step in steps[shared:]:
            sampler = TRANSFORMS[step.name].sampling
            if sampler is None:
                break
            h, w = sampling.size if sampling is not None else x.shape[-2:]
            later = sampler(h, w, views, step(plan.env), streams, x.device)
            sampling = later if sampling is None else sampling.then(later)
            shared += 1
        if sampling is not None:
            x = sampling.apply(x)
        elif per_image > 1:
            x = x.repeat_interleave(per_image, dim=0)
        for step in steps[shared:]:
            x = TRANSFORMS[step.name].fn(x, step(plan.env), streams)
        return resize_views(x, res, res).clamp(0, 1)


def render(
    config: Config,
    model: ClipModel,
    seeds: Sequence[int],
    texts: Sequence[str] | None = None,
    *,
    init_images: Sequence[Path] | None = None,
    precision: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    history: int = 0,
) -> RenderResult:
    """Render one image per seed (and text) with ``config``; see BatchRender (whose
    ``run`` also takes how often to report progress)."""
    job = BatchRender(config, model, seeds, texts, init_images=init_images, precision=precision)
    return job.run(progress=progress, history=history)


def _per_view(weight):
    """A weight as (N, views, 1) to meet (N, views, D) features; a number as it is."""
    return weight.unsqueeze(-1) if isinstance(weight, torch.Tensor) else weight


def _feature_loss(kind: str, feats: torch.Tensor, goal: torch.Tensor, cos: torch.Tensor):
    """Per view (N, views): 1 - cosine, or 100 x the mean absolute (l1) or squared (l2)
    difference of the normalised features, as CLIPig computed them."""
    if kind == "l1":
        return 100.0 * (feats - goal).abs().mean(-1)
    if kind == "l2":
        return 100.0 * ((feats - goal) ** 2).mean(-1)
    return 1.0 - cos
