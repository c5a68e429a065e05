"""`lead-scoring stack install`: resolve the Kafka and Flink jars into the stack cache.

Long on purpose: one job (jars into the cache, verified and locked) whose steps (Maven, the Flink
wheel, the build id, pruning) share the `Layout` and the lock and are read in order.

Sources, and nothing else: Maven Central (through `jvm/pom.xml` and `mvn`) and PyPI (the
`apache-flink-libraries` wheel, which is where flink-dist 2.x is published).

The jars go to `<cache>/lib/<build id>/`, the build id being a hash of everything they are made from
(the pom, our provider's sources, the Kafka and Flink versions), with the record in `install.json`
beside them. So an install for a changed checkout writes a new folder and never touches the jars under
a stack that is running from another one (several checkouts, or a test stack, can share one cache), and
installs are serialised by a lock file. A second run with the same inputs does nothing; Maven runs
offline once its private repository holds what the pom names.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lead_scoring.stack.config import FLINK_VERSION, KAFKA_VERSION, StackConfig

log = logging.getLogger(__name__)

POM = Path(__file__).parent / "jvm" / "pom.xml"
# Our Flink model provider ('provider'='kserve'), built from source: see lead_scoring/streaming/jvm/pom.xml.
MODEL_PROVIDER_DIR = Path(__file__).parents[1] / "streaming" / "jvm"
MODEL_PROVIDER_JAR = "flink-model-kserve-1.0.0.jar"
MANIFEST = "install.json"
LOCK_FILE = ".install.lock"
# Older builds kept besides the current one (when no running process uses them, they are removed).
KEEP_OLD_BUILDS = 2
FLINK_WHEEL = "apache-flink-libraries"
# sha256 of apache_flink_libraries-<version>-py2.py3-none-any.whl as published on PyPI, per Flink version: a
# download (or a cached file) with another hash is refused. Bumping FLINK_VERSION needs a new line here
# (PyPI's "File hashes" of the wheel, or `pip download` it and `sha256sum` it).
FLINK_WHEEL_SHA256 = {
    "2.3.0": "38ece876553286b3a285cf344c2d2038f8a7ca10da5df54d5107250386d64151",
}
# Maven executions of jvm/pom.xml; the triton one needs the old plugin (see the comment in the pom).
MAVEN_GOALS = [
    "dependency:copy-dependencies@kafka",
    "dependency:copy@flink",
    "org.apache.maven.plugins:maven-dependency-plugin:2.10:copy@triton",
]
MIN_JAVA = 17


class StackError(RuntimeError):
    """The stack cannot do what was asked; the message names the cause and the fix."""


@dataclass(frozen=True)
class Layout:
    """Where installed files live inside the cache, for the build this checkout makes."""

    cache: Path
    build_id: str = field(default_factory=lambda: build_id())

    @property
    def maven_repo(self) -> Path:
        # A private local repository keeps the cache self-contained (and offline-capable).
        return self.cache / "m2"

    @property
    def builds(self) -> Path:
        return self.cache / "lib"

    @property
    def lib(self) -> Path:
        return self.builds / self.build_id

    @property
    def kafka_lib(self) -> Path:
        return self.lib / "kafka"

    @property
    def flink_extra_lib(self) -> Path:
        """Connector/format/model jars from Maven Central, on the classpath of every Flink process."""
        return self.lib / "flink"

    @property
    def flink_home(self) -> Path:
        return self.cache / f"flink-{FLINK_VERSION}"

    @property
    def flink_lib(self) -> Path:
        return self.flink_home / "lib"

    @property
    def bash_java_utils(self) -> Path:
        return self.flink_home / "bin" / "bash-java-utils.jar"

    @property
    def downloads(self) -> Path:
        return self.cache / "downloads"

    @property
    def manifest(self) -> Path:
        return self.lib / MANIFEST

    def sql_gateway_jar(self) -> Path:
        return self.flink_extra_lib / f"flink-sql-gateway-{FLINK_VERSION}.jar"

    def flink_classpath(self, *, gateway: bool = False) -> str:
        """flink-dist and table jars first (as bin/config.sh orders them), then the extra jars."""
        jars = sorted(p for p in self.flink_lib.glob("*.jar") if not p.name.startswith("flink-dist"))
        jars += sorted(p for p in self.flink_extra_lib.glob("*.jar") if "sql-gateway" not in p.name)
        jars.append(self.flink_lib / f"flink-dist-{FLINK_VERSION}.jar")
        if gateway:
            jars.append(self.sql_gateway_jar())
        return ":".join(str(j) for j in jars)

    def kafka_classpath(self) -> str:
        return ":".join(str(j) for j in sorted(self.kafka_lib.glob("*.jar")))


def _model_provider_sha256() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in MODEL_PROVIDER_DIR.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(MODEL_PROVIDER_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _fingerprint() -> dict[str, str]:
    return {
        "pom_sha256": hashlib.sha256(POM.read_bytes()).hexdigest(),
        "model_provider_sha256": _model_provider_sha256(),
        "kafka": KAFKA_VERSION,
        "flink": FLINK_VERSION,
    }


def build_id() -> str:
    """Names the jar folder: the same inputs give the same folder, any change a new one."""
    return hashlib.sha256(json.dumps(_fingerprint(), sort_keys=True).encode()).hexdigest()[:12]


REQUIRED_FLINK_EXTRA = [
    f"flink-sql-gateway-{FLINK_VERSION}.jar",
    "flink-sql-connector-kafka-5.0.0-2.2.jar",
    f"flink-sql-avro-{FLINK_VERSION}.jar",
    f"flink-model-triton-{FLINK_VERSION}.jar",
    MODEL_PROVIDER_JAR,
]


def missing_files(layout: Layout) -> list[str]:
    """Files `up` needs that are not in the cache (empty when the install is complete)."""
    missing: list[str] = []
    if not any(layout.kafka_lib.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        missing.append(str(layout.kafka_lib / f"kafka_2.13-{KAFKA_VERSION}.jar"))
    if not any(layout.kafka_lib.glob("log4j-slf4j*-impl-*.jar")):
        missing.append(str(layout.kafka_lib / "log4j-slf4j-impl-*.jar"))
    for name in REQUIRED_FLINK_EXTRA:
        if not (layout.flink_extra_lib / name).is_file():
            missing.append(str(layout.flink_extra_lib / name))
    for path in (layout.flink_lib / f"flink-dist-{FLINK_VERSION}.jar", layout.bash_java_utils):
        if not path.is_file():
            missing.append(str(path))
    return missing


def is_installed(layout: Layout) -> bool:
    """True when the cache holds a complete install made from the current pom and versions."""
    if not layout.manifest.is_file() or missing_files(layout):
        return False
    try:
        recorded = json.loads(layout.manifest.read_text())
    except ValueError:
        return False
    return all(recorded.get(k) == v for k, v in _fingerprint().items())


def java_version(java: str = "java") -> int:
    """Major version of `java` on PATH; raises StackError when there is none."""
    exe = shutil.which(java)
    if exe is None:
        raise StackError(
            f"Java not found on PATH. The stack needs a JDK {MIN_JAVA}+: "
            "install it (Debian: apt-get install openjdk-17-jdk-headless) or put its bin/ on PATH."
        )
    out = subprocess.run([exe, "-XshowSettings:properties", "-version"], capture_output=True, text=True)
    for line in (out.stderr + out.stdout).splitlines():
        line = line.strip()
        if line.startswith("java.specification.version ="):
            raw = line.split("=", 1)[1].strip()
            return int(raw.split(".")[1] if raw.startswith("1.") else raw)
    raise StackError(f"could not read the Java version from `{exe} -version`:\n{out.stderr[-2000:]}")


def require_java() -> None:
    version = java_version()
    if version < MIN_JAVA:
        raise StackError(
            f"Java {version} found, the stack needs {MIN_JAVA}+ (Kafka 4 and Flink 2 require it): "
            "install OpenJDK 17 (Debian: apt-get install openjdk-17-jdk-headless) and put it first on PATH."
        )


def _run(cmd: list[str], what: str, fix: str) -> None:
    log.info("%s: %s", what, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise StackError(f"{what} failed (exit {proc.returncode}). {fix}\n{tail}")


def _maven(layout: Layout, lib: Path) -> None:
    """Resolve the Kafka and Flink jars into `lib`/kafka and `lib`/flink."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (`mvn`) not found on PATH; `stack install` resolves the Kafka and Flink connector jars "
            "with it. Install it (Debian: apt-get install maven) and run `lead-scoring stack install` again."
        )
    offline = ["-o"] if layout.maven_repo.is_dir() and _maven_repo_complete(layout) else []
    cmd = [
        # --strict-checksums: a jar whose checksum does not match Maven Central's fails the install
        mvn,
        "-B",
        "-q",
        "--strict-checksums",
        *offline,
        "-f",
        str(POM),
        f"-Dmaven.repo.local={layout.maven_repo}",
        f"-Dstack.lib={lib}",
        *MAVEN_GOALS,
    ]
    _run(
        cmd,
        "resolving Kafka and Flink connector jars from Maven Central",
        "Check that Maven Central is reachable (or the Maven proxy in ~/.m2/settings.xml), then retry.",
    )


def _build_model_provider(layout: Layout, lib: Path, offline: bool) -> None:
    """`mvn package` of our Flink model provider; the jar goes next to the connector jars in `lib`."""
    mvn = shutil.which("mvn") or "mvn"
    build_dir = layout.cache / "build" / "flink-model-kserve"
    cmd = [
        mvn,
        "-B",
        "-q",
        *(["-o"] if offline else []),
        "-f",
        str(MODEL_PROVIDER_DIR / "pom.xml"),
        f"-Dmaven.repo.local={layout.maven_repo}",
        f"-Dbuild.dir={build_dir}",
        "package",
    ]
    _run(
        cmd,
        "building the kserve Flink model provider",
        "Check that Maven Central is reachable and lead_scoring/streaming/jvm compiles, then retry.",
    )
    (lib / "flink").mkdir(parents=True, exist_ok=True)
    shutil.copy2(build_dir / MODEL_PROVIDER_JAR, lib / "flink" / MODEL_PROVIDER_JAR)


def _maven_repo_complete(layout: Layout, key: str = "pom_sha256") -> bool:
    """A finished install of the same `key` input left its record: Maven has every artifact it needs."""
    want = _fingerprint()[key]
    for record in layout.builds.glob(f"*/{MANIFEST}"):
        try:
            if json.loads(record.read_text()).get(key) == want:
                return True
        except ValueError:
            continue
    return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_wheel(wheel: Path, version: str = FLINK_VERSION) -> Path:
    """`wheel` if its sha256 is the pinned one; else it is deleted and `StackError` says what to do."""
    expected = FLINK_WHEEL_SHA256.get(version)
    if expected is None:
        raise StackError(
            f"no pinned sha256 for {FLINK_WHEEL} {version}: add it to FLINK_WHEEL_SHA256 in "
            f"lead_scoring/stack/install.py (PyPI lists it under the wheel's 'File hashes')"
        )
    actual = file_sha256(wheel)
    if actual != expected:
        wheel.unlink(missing_ok=True)
        raise StackError(
            f"{wheel.name} has sha256 {actual}, not the pinned {expected}: it was not what PyPI "
            f"publishes (a corrupt download or a tampered mirror); it is deleted, run "
            f"`lead-scoring stack install` again"
        )
    return wheel


def _pip_download(layout: Layout) -> Path:
    layout.downloads.mkdir(parents=True, exist_ok=True)
    pattern = f"apache_flink_libraries-{FLINK_VERSION}-*.whl"
    cached = sorted(layout.downloads.glob(pattern))
    if cached:
        return verify_wheel(cached[0])
    # The project venv is uv-managed and has no pip; use pip where there is one, else uv's.
    if _has_pip(sys.executable):
        pip = [sys.executable, "-m", "pip"]
    elif shutil.which("uv"):
        pip = [shutil.which("uv") or "uv", "tool", "run", "--from", "pip", "pip"]
    elif shutil.which("pip3"):
        pip = [shutil.which("pip3") or "pip3"]
    else:
        raise StackError("neither pip nor uv found: install one of them to download the Flink distribution wheel")
    _run(
        [
            *pip,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            str(layout.downloads),
            f"{FLINK_WHEEL}=={FLINK_VERSION}",
        ],
        f"downloading {FLINK_WHEEL} {FLINK_VERSION} from PyPI",
        "Check that PyPI is reachable (or your pip index settings), then retry.",
    )
    cached = sorted(layout.downloads.glob(pattern))
    if not cached:
        raise StackError(f"pip reported success but no {pattern} is in {layout.downloads}")
    return verify_wheel(cached[0])


def _has_pip(python: str) -> bool:
    return subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0


def _unpack_flink(layout: Layout, wheel: Path) -> None:
    """Lay the wheel's pyflink/{lib,opt,bin,plugins} out as a Flink home (no conf: `up` writes it)."""
    tmp = layout.flink_home.with_name(layout.flink_home.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if len(parts) < 3 or parts[0] != "pyflink" or parts[1] not in {"lib", "opt", "bin", "plugins"}:
                continue
            if info.is_dir():
                continue
            target = safe_member_path(tmp, parts[1:], wheel)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
    if not (tmp / "lib" / f"flink-dist-{FLINK_VERSION}.jar").is_file():
        raise StackError(f"{wheel.name} holds no pyflink/lib/flink-dist-{FLINK_VERSION}.jar; delete it and retry")
    if layout.flink_home.exists():
        shutil.rmtree(layout.flink_home)
    tmp.rename(layout.flink_home)


def safe_member_path(root: Path, parts: list[str], archive: Path) -> Path:
    """Where an archive member goes under `root`; `StackError` for one that would land outside it
    ('..', an absolute path, a drive or a backslash in a name: a zip-slip)."""
    if any(p in ("", ".", "..") or "\\" in p or ":" in p for p in parts):
        raise StackError(
            f"{archive.name} holds an unsafe member path {'/'.join(parts)!r}; refusing to unpack it "
            f"(delete {archive} and run `lead-scoring stack install` again)"
        )
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise StackError(f"{archive.name} member {'/'.join(parts)!r} would be written outside {root}; refusing it")
    return target


@contextmanager
def _install_lock(cache: Path) -> Iterator[None]:
    """One install at a time per cache (a test session and `stack up` may both start one)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another `stack install` into %s to finish", cache)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install(cfg: StackConfig | None = None, *, force: bool = False) -> Layout:
    """Resolve every jar the stack needs into the cache; a no-op when already complete."""
    cfg = cfg or StackConfig.from_env()
    layout = Layout(cfg.cache)
    if not force and is_installed(layout):
        log.info("stack already installed in %s", layout.lib)
        return layout
    require_java()
    with _install_lock(layout.cache):
        if not force and is_installed(layout):  # another process installed it while we waited
            log.info("stack already installed in %s", layout.lib)
            return layout
        started = time.monotonic()
        layout.builds.mkdir(parents=True, exist_ok=True)
        # Build the folder aside and rename it into place, so no process ever sees half of it.
        partial = layout.builds / f"{layout.build_id}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        _maven(layout, partial)
        _build_model_provider(layout, partial, offline=_maven_repo_complete(layout, "model_provider_sha256"))
        if force or not (layout.flink_lib / f"flink-dist-{FLINK_VERSION}.jar").is_file():
            _unpack_flink(layout, _pip_download(layout))
        record = {
            **_fingerprint(),
            "build_id": layout.build_id,
            "installed_at": time.time(),
            "seconds": round(time.monotonic() - started, 1),
        }
        (partial / MANIFEST).write_text(json.dumps(record, indent=2))
        if layout.lib.exists():  # only with force: a complete build of the same inputs, replaced
            shutil.rmtree(layout.lib)
        partial.rename(layout.lib)
        missing = missing_files(layout)
        if missing:
            raise StackError("install finished but these files are missing: " + ", ".join(missing))
        removed = prune_builds(layout)
        if removed:
            log.info("removed unused older jar folders: %s", ", ".join(p.name for p in removed))
    log.info("stack installed in %s (%.1f s)", layout.lib, record["seconds"])
    return layout


def _paths_in_use(root: Path) -> str:
    """The command lines of running processes that mention `root` (our JVMs name every jar)."""
    needle = str(root).encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(cmdline.decode(errors="replace"))
    return "\0".join(found)


def prune_builds(layout: Layout, keep: int = KEEP_OLD_BUILDS) -> list[Path]:
    """Remove jar folders of other builds, except the `keep` newest and any a running process uses."""
    others = sorted(
        (p for p in layout.builds.iterdir() if p.is_dir() and p != layout.lib and not p.name.endswith(".partial")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    in_use = _paths_in_use(layout.builds)
    removed = []
    for old in others[keep:]:
        if str(old) + os.sep in in_use:
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def require_installed(layout: Layout) -> None:
    """Raise a StackError naming the missing jars and the command that fetches them."""
    missing = missing_files(layout)
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise StackError(f"stack jars missing ({shown}): run `lead-scoring stack install` first")
