#!/usr/bin/env python3
"""Derive clipig_gallery/core/data/prompts.json from the raw DALL-E sample list.

    python scripts/derive_prompts.py [SOURCE_JSON] [-o clipig_gallery/core/data/prompts.json]

The output is deterministic, so rerunning it on the same source leaves the
file byte-for-byte unchanged (a test checks that it has not drifted).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Make the script usable straight from a checkout, without installing the package.
sys.path.insert(0, str(REPO_ROOT))

from clipig_gallery.core.prompts import derive_prompts, dump_prompts_document, prompts_document  # noqa: E402

DEFAULT_SOURCE = REPO_ROOT / "clipig_gallery" / "core" / "data" / "dall-e-samples.json"
DEFAULT_OUTPUT = REPO_ROOT / "clipig_gallery" / "core" / "data" / "prompts.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"dall-e-samples.json to read (default: {DEFAULT_SOURCE.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where to write the prompt list (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})",
    )
    return parser.parse_args(argv)


def derive_document_text(source: Path) -> str:
    """The exact text clipig_gallery/core/data/prompts.json should hold for this source file."""
    samples = json.loads(source.read_text(encoding="utf-8"))
    prompts = derive_prompts(samples)
    return dump_prompts_document(prompts_document(prompts, source.name))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.source.is_file():
        print(f"error: source file not found: {args.source}", file=sys.stderr)
        return 2
    try:
        text = derive_document_text(args.source)
    except ValueError as exc:
        print(f"error: {args.source}: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    count = json.loads(text)["count"]
    print(f"wrote {count} prompts to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
