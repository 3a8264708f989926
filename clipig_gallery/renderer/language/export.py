"""A parsed config written back as data, with every default filled in.

``render-config`` puts this beside each image (the sidecar YAML, as CLIPig
did): it says exactly what rendered the image, and read back it renders the
same config again. Expressions keep their text; fractions of training are
written as fractions, epochs as whole numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import yaml

from .config import Config, Moment, Param, Step


def _param(param: Param):
    items = [getattr(i, "text", i) for i in param.items]
    return items[0] if len(items) == 1 else items


def _moment(moment: Moment):
    return int(moment.value) if moment.is_epoch else moment.value


def _args(step: Step, skip: Sequence[str] = ()) -> dict:
    out = {}
    for name, value in step.args.items():
        if name in skip or value is None:
            continue
        out[name] = _param(value) if isinstance(value, Param) else value
    return out


def filled_data(config: Config) -> dict:
    """Every key of ``config`` with its value, defaults included."""
    init = {"mean": list(config.init.mean), "std": list(config.init.std)}
    if config.init.resolution is not None:
        init["resolution"] = list(config.init.resolution)
    if config.init.image is not None:
        init["image"] = str(config.init.image)
    data = {
        "epochs": config.epochs,
        "start_epoch": config.start_epoch,
        "resolution": _param(config.resolution),
        "optimizer": config.optimizer,
        "learnrate": _param(config.learnrate),
        "learnrate_scale": _param(config.learnrate_scale),
        "init": init,
        "targets": [],
        "postproc": [],
    }
    for key in ("model", "device"):
        if getattr(config, key) is not None:
            data[key] = getattr(config, key)
    for target in config.targets:
        features = []
        for feature in target.features:
            what = {"text": feature.text} if feature.text is not None \
                else {"image": str(feature.image)}
            features.append({**what, "weight": _param(feature.weight),
                             "scale": _param(feature.scale), "loss": feature.loss,
                             "start": _moment(feature.start), "end": _moment(feature.end)})
        data["targets"].append({
            "name": target.name,
            "batch_size": target.batch_size,
            "weight": _param(target.weight),
            "start": _moment(target.start),
            "end": _moment(target.end),
            "select": target.select,
            "feature_scale": "equal",
            "features": features,
            "transforms": [{s.name: _args(s)} for s in target.transforms],
            "constraints": [
                {c.step.name: {**_args(c.step), "weight": _param(c.weight),
                               "start": _moment(c.start), "end": _moment(c.end)}}
                for c in target.constraints
            ],
        })
    for post in config.postproc:
        data["postproc"].append({post.step.name: _args(post.step), "start": _moment(post.start),
                                 "end": _moment(post.end)})
    return data


def sidecar_text(config: Config, notes: Sequence[str] = (),
                 statistics: Mapping[str, object] | None = None) -> str:
    """The sidecar YAML: ``notes`` as comments on top, the filled-in config, and
    ``statistics`` (runtime, similarities) as comments below, so the file stays a
    config that renders again."""
    lines = [f"# {note}" for note in notes]
    lines.append(yaml.safe_dump(filled_data(config), sort_keys=False, allow_unicode=True,
                                width=100, default_flow_style=None).rstrip("\n"))
    if statistics:
        lines.append("")
        lines += ["# " + row for row in
                  yaml.safe_dump(dict(statistics), sort_keys=False, allow_unicode=True,
                                 width=100).rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"
