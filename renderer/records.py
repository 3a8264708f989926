"""The record written beside every rendered image."""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .imageio import write_json


@dataclass(frozen=True)
class RenderRecord:
    prompt: str
    config: str  # the config's file name (e.g. method-1.yaml)
    config_hash: str  # Config.hash: config, epochs and init image, prompt left out
    seed: int
    model: str  # the name or path it was loaded by
    device: str
    precision: str
    epochs: int
    seconds: float  # this image's share of the batch's wall time
    batch: int  # images rendered together
    sim: float  # 100 x cosine of the saved PNG with the prompt, fp32
    device_name: str = ""  # e.g. the GPU's model name
    model_id: str = ""  # "sha256:..." of the weights: what decides a redo
    # Set for gallery and ranking renders: which prompt of the list this is.
    animal: str | None = None
    thing: str | None = None
    stem: str | None = None
    method: int | None = None
    # Set for ranking renders: the run number and, for continued runs, the
    # image they started from.
    run: int | None = None
    init_image: str | None = None
    torch: str = torch.__version__
    created: str = ""

    def write(self, path: Path) -> Path:
        data = asdict(self)
        data["created"] = data["created"] or _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"
        )
        return write_json(data, path)
