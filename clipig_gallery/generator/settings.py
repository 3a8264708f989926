"""The site's publishing settings, configured once in clipig_gallery/core/data/site.yaml."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from clipig_gallery.core.paths import DATA_DIR
from clipig_gallery.core.textfiles import NotUTF8, load_yaml, read_utf8

from .publish import PublishError, check_target
from .sitepaths import BaseUrlError, normalise_base_url

SETTINGS_FILE = DATA_DIR / "site.yaml"
_KEYS = ("base_url", "cname", "remote", "branch", "post_date", "post_slug", "blog_assets")
_OPTIONAL = ("cname", "post_date", "post_slug")


@dataclass(frozen=True)
class SiteSettings:
    base_url: str = "/"
    cname: str | None = None
    remote: str = "origin"
    branch: str = "gh-pages"
    # The post in an existing Jekyll blog (`site --format jekyll`): its day and
    # slug (default: the article's date and permalink), and its asset folder.
    post_date: str | None = None
    post_slug: str | None = None
    blog_assets: str = "assets/clipig-gallery"


def load_settings(path: Path = SETTINGS_FILE) -> SiteSettings:
    """Read the settings; a missing file means the defaults."""
    if not Path(path).is_file():
        return SiteSettings()
    try:
        data = load_yaml(read_utf8(path)) or {}
    except NotUTF8 as exc:
        raise ValueError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {', '.join(_KEYS)}")
    for key, value in data.items():
        if key not in _KEYS:
            raise ValueError(f"{path}: {key}: unknown key; expected one of {', '.join(_KEYS)}")
        if isinstance(value, _dt.date):  # YAML reads 2021-06-09 as a date
            value = data[key] = value.isoformat()
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{path}: {key}: expected a string, got {value!r}")
        if value is None and key not in _OPTIONAL:
            raise ValueError(f"{path}: {key}: must not be empty")
        if key == "base_url":
            try:
                normalise_base_url(value)
            except BaseUrlError as exc:
                raise ValueError(f"{path}: base_url: {exc}") from None
        if key == "post_date" and value is not None:
            try:
                _dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{path}: post_date: expected a day, YYYY-MM-DD, got "
                                 f"{value!r}") from None
    settings = SiteSettings(**data)
    try:
        check_target(settings.remote, settings.branch, settings.cname)
    except PublishError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return settings
