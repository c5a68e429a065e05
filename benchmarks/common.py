"""What several benchmarks need: synthetic records and a small trained model, from the library only."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from lead_scoring.crm.synthetic import frame_records, generate_leads
from lead_scoring.settings import Profile
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs, ModelArtifact
from lead_scoring.training.model import ModelParams, build_pipeline, features_frame, fit


def synthetic_records(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` valid contract records (Leads and Contacts), nulls left out as a CRM connector sends them."""
    return list(frame_records(generate_leads(n, seed=seed)))


def small_model(store_root: Path, n: int = 2000, seed: int = 1, note: str = "benchmark") -> ModelArtifact:
    """A model trained on `n` synthetic leads, saved (sha256-verified) to a local artifact store."""
    frame = generate_leads(n, seed=seed)
    labelled = frame[frame["IsConverted"].notna()]
    pipeline = fit(build_pipeline(ModelParams()), features_frame(labelled), labelled["IsConverted"].astype(bool))
    return ArtifactRepository(LocalBlobs(store_root), Profile.LOCAL).save(pipeline, {"trained_on": note})


class CpuMeter:
    """CPU seconds (user + system, psutil) spent by a set of processes between two reads (not their children:
    the benchmark's children are the supervisor and, through it, the services measured on their own).

    On a 2-core machine wall-clock throughput cannot show scaling honestly; CPU seconds per record can.
    Processes that exit between reads keep the CPU they had at their last read (a best effort for restarts).
    """

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)
        self.procs: dict[str, psutil.Process] = {}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.procs[name] = psutil.Process(pid)
        self._last: dict[str, float] = {}
        self.start = self.read()

    def _cpu(self, proc: psutil.Process) -> float:
        total = 0.0
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system
        return total

    def read(self) -> dict[str, float]:
        for name, proc in self.procs.items():
            self._last[name] = max(self._last.get(name, 0.0), self._cpu(proc))
        return dict(self._last)

    def since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.read()
        return {name: round(now[name] - before.get(name, 0.0), 2) for name in now}


class ThreadCpu:
    """CPU seconds per thread name of one process between two reads (Linux /proc), e.g. a JVM's GC, JIT compiler
    and Flink task threads, to tell which of them a latency tail comes from.

    Names are the kernel's 15-character thread names with trailing numbers dropped ("GC Thread#1" and
    "GC Thread#0" add up as "GC Thread#"); threads that ended between reads are not counted.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.start = self.read()

    def read(self) -> dict[int, tuple[str, float]]:
        ticks = os.sysconf("SC_CLK_TCK")
        out: dict[int, tuple[str, float]] = {}
        task_dir = Path(f"/proc/{self.pid}/task")
        with contextlib.suppress(OSError):
            for task in task_dir.iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    name = (task / "comm").read_text().strip()
                    # fields after the ")" that closes the name: utime and stime are the 12th and 13th
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
        return out

    def since(self, before: dict[int, tuple[str, float]], top: int = 8) -> dict[str, float]:
        """The `top` thread names by CPU seconds since `before`, the rest as "other"."""
        by_name: dict[str, float] = {}
        for tid, (name, cpu) in self.read().items():
            label = name.rstrip("0123456789").rstrip("-_ ") or name
            by_name[label] = by_name.get(label, 0.0) + cpu - before.get(tid, (name, 0.0))[1]
        ranked = sorted(by_name.items(), key=lambda kv: -kv[1])
        out = {name: round(cpu, 2) for name, cpu in ranked[:top]}
        if ranked[top:]:
            out["other"] = round(sum(cpu for _, cpu in ranked[top:]), 2)
        return out


def flink_busy(flink_rest_url: str) -> dict[str, dict[str, float]]:
    """Per running job and vertex: max busy / back-pressured ms per second over its subtasks (Flink metrics).

    A vertex near 1000 ms/s busy is the bottleneck; the vertices upstream of it show back pressure.
    """
    out: dict[str, dict[str, float]] = {}
    for job in httpx.get(f"{flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]:
        if job["state"] != "RUNNING":
            continue
        detail = httpx.get(f"{flink_rest_url}/jobs/{job['jid']}", timeout=10).json()
        for i, vertex in enumerate(detail["vertices"]):
            got = httpx.get(
                f"{flink_rest_url}/jobs/{job['jid']}/vertices/{vertex['id']}/subtasks/metrics",
                params={"get": "busyTimeMsPerSecond,backPressuredTimeMsPerSecond", "agg": "max"},
                timeout=10,
            ).json()
            metrics = {m["id"]: round(float(m.get("max", "nan")), 0) for m in got}
            out[f"{job['name']}#{i} x{vertex['parallelism']}"] = {
                "busy": metrics.get("busyTimeMsPerSecond", float("nan")),
                "backpressured": metrics.get("backPressuredTimeMsPerSecond", float("nan")),
            }
    return out


def flink_checkpoints(flink_rest_url: str, since_ms: float) -> list[dict[str, Any]]:
    """Every running job's checkpoints triggered at or after `since_ms` (epoch ms), oldest first: when, how
    long, how much state (Flink REST `/jobs/<id>/checkpoints`, its `history`)."""
    out: list[dict[str, Any]] = []
    for job in httpx.get(f"{flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]:
        if job["state"] != "RUNNING":
            continue
        got = httpx.get(f"{flink_rest_url}/jobs/{job['jid']}/checkpoints", timeout=10).json()
        for cp in got.get("history", []):
            if cp.get("trigger_timestamp", 0) >= since_ms:
                out.append(
                    {
                        "job": job["name"],
                        "id": cp["id"],
                        "status": cp.get("status"),
                        "trigger_ms": cp["trigger_timestamp"],
                        "duration_ms": cp.get("end_to_end_duration"),
                        "state_bytes": cp.get("state_size", cp.get("checkpointed_size")),
                        "alignment_buffered_bytes": cp.get("alignment_buffered"),
                    }
                )
    return sorted(out, key=lambda c: c["trigger_ms"])


def taskmanager_gc(flink_rest_url: str) -> dict[str, dict[str, float]]:
    """Per TaskManager: each garbage collector's total time (ms) and count so far (Flink's JVM metrics)."""
    out: dict[str, dict[str, float]] = {}
    for tm in httpx.get(f"{flink_rest_url}/taskmanagers", timeout=10).json()["taskmanagers"]:
        url = f"{flink_rest_url}/taskmanagers/{tm['id']}/metrics"
        names = [
            m["id"] for m in httpx.get(url, timeout=10).json() if m["id"].startswith("Status.JVM.GarbageCollector.")
        ]
        if names:
            got = httpx.get(url, params={"get": ",".join(names)}, timeout=10).json()
            out[tm["id"]] = {m["id"].removeprefix("Status.JVM.GarbageCollector."): float(m["value"]) for m in got}
    return out


def stall_runs(slow_by_second: dict[int, int], rate: float, share: float = 0.9) -> list[tuple[int, int]]:
    """(first second, last second) of each run of seconds in which at least `share` of the records were slow."""
    runs: list[tuple[int, int]] = []
    for second in sorted(int(s) for s, n in slow_by_second.items() if n >= share * rate):
        if runs and second == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], second)
        else:
            runs.append((second, second))
    return runs


def flink_placement(flink_rest_url: str) -> dict[str, Any]:
    """Where the running statements' subtasks run: per TaskManager, the number of subtasks (all jobs), and
    per job, its subtasks per TaskManager (Flink REST `/jobs/<id>/vertices/<id>/taskmanagers`).

    A scale-out is only real if each statement's subtasks are spread over the TaskManagers.
    """
    registered = httpx.get(f"{flink_rest_url}/taskmanagers", timeout=10).json()["taskmanagers"]
    totals: dict[str, int] = {tm["id"]: 0 for tm in registered}
    jobs: dict[str, dict[str, int]] = {}
    for job in httpx.get(f"{flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]:
        if job["state"] != "RUNNING":
            continue
        per_tm: dict[str, int] = {}
        detail = httpx.get(f"{flink_rest_url}/jobs/{job['jid']}", timeout=10).json()
        for vertex in detail["vertices"]:
            got = httpx.get(
                f"{flink_rest_url}/jobs/{job['jid']}/vertices/{vertex['id']}/taskmanagers", timeout=10
            ).json()
            for tm in got.get("taskmanagers", []):
                tm_id = tm.get("taskmanager-id") or tm.get("resource-id") or tm.get("endpoint", "?")
                count = sum(int(v) for v in tm.get("status-counts", {}).values()) or 1
                per_tm[tm_id] = per_tm.get(tm_id, 0) + count
                totals[tm_id] = totals.get(tm_id, 0) + count
        jobs[job["name"]] = per_tm
    return {"subtasks_per_taskmanager": totals, "jobs": jobs}


class CpuBudgetError(RuntimeError):
    pass


class CpuBudgets:
    """Machines emulated on one host: each node is a cgroup with a CPU quota, so the processes put in it use at
    most that many CPUs however idle the host is (cgroup v1 `cpu.cfs_quota_us`, or v2 `cpu.max`).

    On a 2-core host two topologies share the same cores, so wall-clock throughput cannot show what a second
    TaskManager on its own machine adds; with every node capped at the same budget, it can: a topology with
    twice the nodes has twice the CPU where the work is, and the throughput each sustains is measured, not
    projected. Needs root (or a delegated cgroup) on Linux.
    """

    PERIOD_US = 100_000

    def __init__(self, label: str = "lead_scoring_bench"):
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.version, self.root = 1, v1
        elif "cpu" in _read(v2 / "cgroup.controllers").split():
            self.version, self.root = 2, v2
        else:
            raise CpuBudgetError(
                "no cgroup CPU controller at /sys/fs/cgroup/cpu (v1) or /sys/fs/cgroup (v2): "
                "run without --node-cpus (throughput per CPU-second only)"
            )
        self.base = self.root / f"{label}_{os.getpid()}"
        try:
            if self.version == 2:
                _write(self.root / "cgroup.subtree_control", "+cpu")
            self.base.mkdir(exist_ok=True)
            if self.version == 2:
                _write(self.base / "cgroup.subtree_control", "+cpu")
        except OSError as exc:
            raise CpuBudgetError(
                f"cannot create the cgroup {self.base} ({exc.strerror}): --node-cpus needs root "
                "or a cgroup delegated to this user; run without it (throughput per CPU-second "
                "only)"
            ) from None
        self.nodes: dict[str, list[int]] = {}

    def assign(self, node: str, pids: list[int], cpus: float) -> None:
        """Put `pids` and all their descendants (threads follow their process) in `node`, capped at `cpus`."""
        if cpus <= 0:
            raise CpuBudgetError(f"a node's CPU budget must be > 0, got {cpus}")
        group = self.base / node
        if node not in self.nodes:
            group.mkdir(exist_ok=True)
            quota = int(cpus * self.PERIOD_US)
            if self.version == 1:
                _write(group / "cpu.cfs_period_us", str(self.PERIOD_US))
                _write(group / "cpu.cfs_quota_us", str(quota))
            else:
                _write(group / "cpu.max", f"{quota} {self.PERIOD_US}")
            self.nodes[node] = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                    _write(group / "cgroup.procs", str(proc.pid))
                    self.nodes[node].append(proc.pid)

    def throttled_s(self) -> dict[str, float]:
        """Per node, the seconds its processes were held back by the quota so far (cpu.stat)."""
        out = {}
        for node in self.nodes:
            stat = dict(line.split() for line in _read(self.base / node / "cpu.stat").splitlines() if line.strip())
            out[node] = (
                int(stat.get("throttled_time", 0)) / 1e9
                if self.version == 1
                else int(stat.get("throttled_usec", 0)) / 1e6
            )
        return out

    def close(self) -> None:
        """Back to the parent cgroup, then remove the nodes (a process that exited needs no moving)."""
        for node, pids in self.nodes.items():
            for pid in pids:
                with contextlib.suppress(OSError):
                    _write(self.root / "cgroup.procs", str(pid))
            with contextlib.suppress(OSError):
                (self.base / node).rmdir()
        self.nodes = {}
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def replace_section(text: str, begin: str, end: str, body: str) -> str:
    """`text` with what lies between the markers `begin` and `end` replaced by `body` (docs rendered from results
    files, never typed by hand)."""
    if begin not in text or end not in text:
        raise ValueError(f"the markers {begin!r} and {end!r} are not both in the text")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}{end}{tail}"


def provenance(argv: list[str]) -> dict[str, Any]:
    """What produced a results file: the commit (and whether the tree had changes), the machine, the command."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    memory = psutil.virtual_memory()
    # the machine probe docs/performance.md compares machines by (pure Python, one core): record it with the figures
    started = time.perf_counter()
    sum(i * i for i in range(10**7))
    probe_s = round(time.perf_counter() - started, 2)
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "tree_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *argv]),
        "machine": {
            "probe_s": probe_s,
            "probe": "sum(i*i for i in range(10**7)), seconds",
            "cpu": cpu,
            "cpus": os.cpu_count(),
            "memory_gib": round(memory.total / 2**30, 1),
            "memory_available_gib_at_start": round(memory.available / 2**30, 1),
            "load_at_start": os.getloadavg(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "host": platform.node(),
        },
        "started_at": datetime.now(UTC).isoformat(),
    }
