"""What several benchmarks need: synthetic records and a small trained model, from the library only."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import psutil

from lead_scoring.crm.synthetic import frame_records, generate_leads
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
    return ArtifactRepository(LocalBlobs(store_root)).save(pipeline, {"trained_on": note})


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
            got = httpx.get(f"{flink_rest_url}/jobs/{job['jid']}/vertices/{vertex['id']}/subtasks/metrics",
                            params={"get": "busyTimeMsPerSecond,backPressuredTimeMsPerSecond", "agg": "max"},
                            timeout=10).json()
            metrics = {m["id"]: round(float(m.get("max", "nan")), 0) for m in got}
            out[f"{job['name']}#{i} x{vertex['parallelism']}"] = {
                "busy": metrics.get("busyTimeMsPerSecond", float("nan")),
                "backpressured": metrics.get("backPressuredTimeMsPerSecond", float("nan"))}
    return out
