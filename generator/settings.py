"""The site's publishing settings, configured once in data/site.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from gallery.paths import DATA_DIR

SETTINGS_FILE = DATA_DIR / "site.yaml"
_KEYS = ("base_url", "cname", "remote", "branch")


@dataclass(frozen=True)
class SiteSettings:
    base_url: str = "/"
    cname: str | None = None
    remote: str = "origin"
    branch: str = "gh-pages"


def load_settings(path: Path = SETTINGS_FILE) -> SiteSettings:
    """Read the settings; a missing file means the defaults."""
    if not Path(path).is_file():
        return SiteSettings()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {', '.join(_KEYS)}")
    for key, value in data.items():
        if key not in _KEYS:
            raise ValueError(f"{path}: {key}: unknown key; expected one of {', '.join(_KEYS)}")
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{path}: {key}: expected a string, got {value!r}")
        if value is None and key != "cname":
            raise ValueError(f"{path}: {key}: must not be empty")
    return SiteSettings(**data)
