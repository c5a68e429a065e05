"""Files other processes read while we may be writing them: replaced whole, never seen half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename; an unchanged file is left alone.

    Every service spec rewrites the Flink config.yaml, so without this a JobManager starting while the
    TaskManager's spec is built could read a truncated file and fall back to Flink's defaults (port 6123,
    REST on all interfaces), which it did once in a benchmark.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_text() == text:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
