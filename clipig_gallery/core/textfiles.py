"""The text files a user edits, read with errors that say what is wrong (no torch).

``read_utf8``: a file's text, or ``NotUTF8`` (a ValueError) naming the first
byte that is not UTF-8 and its line (a config saved as Latin-1 or UTF-16 by an
editor), never a UnicodeDecodeError; line ends as Python's text mode reads them.

``load_yaml``: PyYAML's safe loader, where every failure is a ``yaml.YAMLError``
with the place it happened. The safe loader builds only plain values, but a
few malformed ones escape it as other exceptions: an impossible date
(``2021-06-31``) or time and ``!!int abc`` as a ValueError, ``!!bool maybe``
as a KeyError, ``!!timestamp x`` as an AttributeError, nesting a few hundred
levels deep as a RecursionError. Callers catch ``yaml.YAMLError`` to name the
file; here those become one, marked with the line and column of the value.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.constructor import ConstructorError


class _Loader(yaml.SafeLoader):
    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            kind = str(node.tag).rsplit(":", 1)[-1]
            value = quoted(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            why = f" ({exc})" if isinstance(exc, (ValueError, OverflowError)) else ""
            raise ConstructorError(None, None, f"cannot read {value} as a YAML {kind}{why}",
                                   node.start_mark) from None


def load_yaml(text: str) -> object:
    """The data of one YAML document (None when it is empty)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise yaml.YAMLError("nested too deeply to read") from None


class NotUTF8(ValueError):
    """A file that should be UTF-8 text holds a byte that is not."""


def read_utf8(path: str | Path) -> str:
    """The text of ``path``; OSError as ``open`` raises it, NotUTF8 for other bytes."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise NotUTF8(f"not UTF-8 text: byte {data[exc.start]:#04x} on line {line} "
                      "(save the file as UTF-8)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def quoted(text: str, limit: int = 200) -> str:
    """``text`` as repr shows it, cut after ``limit`` characters with its length
    said, so that a message about a huge value stays one readable line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
