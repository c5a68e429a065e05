"""The model server's container fetches nothing by name alone: the base image by digest, uv by wheel hash."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "lead_scoring" / "serving" / "Dockerfile"
UV_REQUIREMENTS = ROOT / "lead_scoring" / "serving" / "uv-requirements.txt"
DIGEST = r"@sha256:[0-9a-f]{64}"


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_every_image_the_build_pulls_is_pinned_by_digest() -> None:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(_instructions()), flags=re.MULTILINE))
    images = []
    for line in _instructions():
        if line.startswith("FROM "):
            images.append(line.split()[1])
        images += re.findall(r"--from=(\S+)", line) if line.startswith("COPY ") else []
    assert images, "the Dockerfile has no FROM"
    for image in images:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), image)
        assert re.search(DIGEST + "$", resolved), f"{image} ({resolved}) is not pinned by digest"


def test_uv_is_installed_by_hash_at_the_version_the_bootstrap_uses() -> None:
    installs = [line for line in _instructions() if line.startswith("RUN ") and "pip install" in line]
    assert installs and all("--require-hashes" in line for line in installs)
    text = UV_REQUIREMENTS.read_text()
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    version = re.search(r"^UV_VERSION=(\S+)", bootstrap, flags=re.MULTILINE).group(1)
    assert f"uv=={version} " in text
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 2  # x86_64 and aarch64 wheels
