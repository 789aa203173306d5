"""Argument types of the command line: image sizes, comma-separated lists, rates."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """'256x192' -> (width, height) in pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size '{text}' must look like 256x256 (WxH)") from None
    if w <= 0 or h <= 0 or w > 4096 or h > 4096:
        raise argparse.ArgumentTypeError(f"size '{text}' must be between 1x1 and 4096x4096")
    return w, h


def parse_csv(text: str) -> tuple[str, ...]:
    """'lite,paper' -> ('lite', 'paper')."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"'{text}' must be a comma-separated list")
    return items


def parse_rates(text: str) -> tuple[float, ...]:
    """'1,2,5' -> (1.0, 2.0, 5.0) Hz, each > 0."""
    try:
        rates = tuple(float(t) for t in parse_csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates '{text}' must be numbers in Hz, e.g. "
                                         "1,2,5,10") from None
    if any(not r > 0 for r in rates):
        raise argparse.ArgumentTypeError(f"rates '{text}' must all be > 0 Hz")
    return tuple(sorted(rates))
