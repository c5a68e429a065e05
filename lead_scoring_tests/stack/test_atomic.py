"""Config files the services read while the stack rewrites them are never seen half-written."""

from __future__ import annotations

import threading
from pathlib import Path

from lead_scoring.stack.atomic import write_atomically


def test_a_reader_sees_the_old_or_the_new_file_never_a_truncated_one(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    versions = [f"version: {i}\n" + "key: value\n" * (50 + 40 * (i % 3)) for i in range(3)]
    write_atomically(path, versions[0])
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(600):
            write_atomically(path, versions[i % 3])
    finally:
        done.set()
        reader.join()
    assert seen <= set(versions)  # a plain write_text shows "" (truncated) or a prefix here
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unchanged_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    write_atomically(path, "a=1\n")
    inode = path.stat().st_ino
    write_atomically(path, "a=1\n")
    assert path.stat().st_ino == inode
    write_atomically(path, "a=2\n")
    assert path.read_text() == "a=2\n" and path.stat().st_ino != inode
