"""The text files a user edits: bytes that are not UTF-8 and YAML values PyYAML
cannot build are errors that say where, never a raw exception."""

from __future__ import annotations

import datetime

import pytest
import yaml

from clipig_gallery.core.textfiles import NotUTF8, load_yaml, quoted, read_utf8


@pytest.mark.parametrize(("text", "message"), [
    # values the safe loader accepts as tokens but then fails to build, with
    # other exceptions than YAMLError (ValueError, KeyError, AttributeError)
    ("a: 2021-06-31", "cannot read '2021-06-31' as a YAML timestamp (day is out of range"),
    ("a: 2021-06-09 25:00:00", "(hour must be in 0..23)"),
    ("a: !!int abc", "cannot read 'abc' as a YAML int (invalid literal"),
    ("a: !!float x", "cannot read 'x' as a YAML float"),
    ("a: !!bool maybe", "cannot read 'maybe' as a YAML bool"),
    ("a: !!timestamp x", "cannot read 'x' as a YAML timestamp"),
])
def test_a_value_yaml_cannot_build_is_a_yaml_error_with_its_place(text, message):
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml("first: 1\n" + text + "\n")
    assert message in str(info.value)
    assert (info.value.problem_mark.line, info.value.problem_mark.column) == (1, 3)


def test_nesting_too_deep_is_a_yaml_error():
    with pytest.raises(yaml.YAMLError, match="nested too deeply"):
        load_yaml("a: " + "[" * 2000 + "]" * 2000)


def test_what_the_safe_loader_reads_is_unchanged():
    text = "a: [1, 2.5, yes, null, 'x']\nday: 2021-06-09\nb: {c: ~}\n"
    assert load_yaml(text) == yaml.safe_load(text) == {
        "a": [1, 2.5, True, None, "x"], "day": datetime.date(2021, 6, 9), "b": {"c": None}}
    assert load_yaml("") is None


def test_no_python_objects():
    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):
        load_yaml("a: !!python/object/apply:os.system ['true']\n")


def test_read_utf8_names_the_first_byte_that_is_not_and_its_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("epochs: 10\ntext: caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(NotUTF8, match=r"^not UTF-8 text: byte 0xe9 on line 2 \(save the file "
                                      r"as UTF-8\)$"):
        read_utf8(path)
    path.write_bytes("a: \u00e9\n".encode("utf-16"))  # an editor's "Unicode": a BOM, then pairs
    with pytest.raises(NotUTF8, match="byte 0xff on line 1"):
        read_utf8(path)


def test_read_utf8_reads_what_text_mode_reads(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes("\ufeffa: caf\u00e9\r\nb: 2\rc: 3\n".encode())
    assert read_utf8(path) == path.read_text(encoding="utf-8") == "\ufeffa: caf\u00e9\nb: 2\nc: 3\n"
    with pytest.raises(FileNotFoundError):
        read_utf8(tmp_path / "missing.txt")


@pytest.mark.parametrize("reader", ["config", "settings", "article", "prompts"])
def test_a_file_that_is_not_utf8_is_named_by_every_reader(tmp_path, reader):
    from clipig_gallery.core.prompts import load_prompts
    from clipig_gallery.generator.article import ArticleError, read_article
    from clipig_gallery.generator.settings import load_settings
    from clipig_gallery.renderer.language.config import ConfigError, load_config

    path = tmp_path / "file"
    path.write_bytes(b"title: \xff\n")
    read, error = {"config": (load_config, ConfigError), "settings": (load_settings, ValueError),
                   "article": (read_article, ArticleError),
                   "prompts": (load_prompts, ValueError)}[reader]
    with pytest.raises(error) as info:
        read(path)
    assert str(info.value) == (f"{path}: not UTF-8 text: byte 0xff on line 1 (save the file "
                               "as UTF-8)")


def test_a_huge_value_is_shown_cut_with_its_length():
    assert quoted("abc") == "'abc'"
    assert quoted("x" * 200) == repr("x" * 200)
    assert quoted("x" * 201) == f"{'x' * 200!r}... (201 characters)"
    with pytest.raises(yaml.YAMLError) as info:  # Python refuses ints of over 4300 digits
        load_yaml("epochs: " + "9" * 5000 + "\n")
    assert f"cannot read {'9' * 200!r}... (5000 characters) as a YAML int" in str(info.value)
