"""The article's configs: each method's, and the ranking's short and detail ones."""

from __future__ import annotations

from clipig_gallery.core.paths import method_config_path, ranking_config_path

from ..language.config import Config, load_config


def method_config(method: int, epochs: int | None = None) -> Config:
    config = load_config(method_config_path(method))
    return config.with_epochs(epochs) if epochs is not None else config


def ranking_config(method: int, kind: str, text: str, epochs: int | None = None) -> Config:
    """The short or detail config of a method, with the prompt substituted."""
    config = load_config(ranking_config_path(method, kind)).with_text(text)
    return config.with_epochs(epochs) if epochs is not None else config
