"""Serving benchmark: our KServe server vs MLServer's scikit-learn runtime, same pipeline, same records.

    .venv/bin/python benchmarks/serving.py [--seconds 5] [--rounds 2] [--concurrency 8]

What it does, all on 127.0.0.1 of this machine:
1. fits the lead model on synthetic leads and saves one artifact (model.joblib + manifest);
2. creates MLServer's own environment (`uv sync --project benchmarks/mlserver`, into the gitignored
   benchmarks/.venv-mlserver: MLServer's pins clash with kserve's) and serves the SAME model.joblib with
   `mlserver_sklearn.SKLearnModel`, MLServer defaults except: loopback, free ports, `debug: false` (no
   access log, like ours); measured with its default `parallel_workers` (1: inference in a worker process)
   and with `parallel_workers: 0` (in the server process, like ours);
3. checks both servers give the same answer for the same records (our score == round(100 * MLServer's
   predict_proba)): the comparison is only meaningful if they compute the same thing;
4. drives each server with the same bounded closed-loop load generator (N keep-alive connections, raw
   HTTP/1.1 over asyncio, one request in flight per connection; warm-up, then a fixed time), alternating
   servers round by round so background load on the machine hits both alike.

Payloads: the same records, in each server's protocol. Ours: V2 = one BYTES input holding the JSON
record (what Flink's triton provider sends), V1 = {"instances": [...]}. MLServer has no V1 endpoint: it
gets V2 with one column tensor per feature and `content_type: pd` (what its sklearn runtime expects),
asking for `predict_proba`. Ours also validates every record against the contract and explains every
score (top 3 reasons); MLServer does neither.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

from lead_scoring.contract import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, parse_record
from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.settings import Profile, project_root
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import MODEL_FILE, ArtifactRepository, LocalBlobs
from lead_scoring.training.model import MISSING, ModelParams, build_pipeline, features_frame, fit

ROOT = project_root()

MLSERVER_PROJECT = ROOT / "benchmarks" / "mlserver"
MLSERVER_ENV = ROOT / "benchmarks" / ".venv-mlserver"
NAME = "lead_scorer"


# -- data and model ---------------------------------------------------------------------------------
def records(n: int, seed: int) -> list[dict[str, Any]]:
    frame = generate_leads(n, seed=seed)
    raw = frame.astype(object).where(frame.notna(), None).to_dict("records")
    clean = [r for r, errors in map(parse_record, raw) if not errors]
    # numbers present (MLServer's JSON tensors cannot carry NaN); categories may be missing
    for r in clean:
        for name in NUMERIC_FEATURES:
            if r[name] is None:
                r[name] = 0.0
    return clean


def fit_artifact(store: Path) -> tuple[str, str]:
    train = generate_leads(20_000, seed=1)
    train = train[train["IsConverted"].notna()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = fit(build_pipeline(ModelParams()), features_frame(train), train["IsConverted"].tolist())
    artifact = ArtifactRepository(LocalBlobs(store), Profile.LOCAL).save(
        pipeline, {"note": "benchmark"}, version="mbench"
    )
    return artifact.uri, artifact.version


# -- payloads ---------------------------------------------------------------------------------------
def ours_v2(record: dict) -> bytes:
    return json.dumps(
        {
            "inputs": [{"name": "RECORD", "datatype": "BYTES", "shape": [1], "data": [json.dumps(record)]}],
            "outputs": [{"name": "SCORE"}],
        }
    ).encode()


def ours_v1(batch: list[dict]) -> bytes:
    return json.dumps({"instances": batch}).encode()


def mlserver_v2(batch: list[dict]) -> bytes:
    frame = features_frame(batch)
    inputs = []
    for name in FEATURES:
        column = frame[name].tolist()
        if name in CATEGORICAL_FEATURES:
            data = [MISSING if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in column]
            inputs.append(
                {
                    "name": name,
                    "datatype": "BYTES",
                    "shape": [len(data)],
                    "data": data,
                    "parameters": {"content_type": "str"},
                }
            )
        else:
            inputs.append(
                {"name": name, "datatype": "FP64", "shape": [len(column)], "data": [float(v) for v in column]}
            )
    return json.dumps(
        {"parameters": {"content_type": "pd"}, "inputs": inputs, "outputs": [{"name": "predict_proba"}]}
    ).encode()


# -- servers ----------------------------------------------------------------------------------------
def start_mlserver(model_file: str, workdir: Path, parallel_workers: int) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(MLSERVER_ENV))
    subprocess.run(["uv", "sync", "--project", str(MLSERVER_PROJECT), "--frozen", "--quiet"], check=True, env=env)
    repo = workdir / f"mlserver-{parallel_workers}"
    (repo / NAME).mkdir(parents=True)
    shutil.copy(model_file, repo / NAME / "model.joblib")
    port = free_port()
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "debug": False,
                "parallel_workers": parallel_workers,
            }
        )
    )
    (repo / NAME / "model-settings.json").write_text(
        json.dumps(
            {
                "name": NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    log = open(repo / "mlserver.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [str(MLSERVER_ENV / "bin" / "mlserver"), "start", str(repo)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=repo,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"MLServer exited:\n{(repo / 'mlserver.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"MLServer not ready:\n{(repo / 'mlserver.log').read_text()[-2000:]}")


# -- load generator ---------------------------------------------------------------------------------
async def _worker(
    port: int, requests: list[bytes], start_at: int, deadline: float, out: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = start_at
    try:
        while time.perf_counter() < deadline:
            request = requests[i % len(requests)]
            i += 1
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            out.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(int(head[9:12]))
    finally:
        writer.close()


def drive(port: int, path: str, bodies: list[bytes], seconds: float, concurrency: int) -> dict[str, float]:
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]

    async def run(duration: float) -> tuple[list[float], list[int], float]:
        latencies: list[float] = []
        errors: list[int] = []
        start = time.perf_counter()
        deadline = start + duration
        await asyncio.gather(*(_worker(port, requests, k * 7, deadline, latencies, errors) for k in range(concurrency)))
        return latencies, errors, time.perf_counter() - start

    asyncio.run(run(min(2.0, seconds / 2)))  # warm-up
    latencies, errors, elapsed = asyncio.run(run(seconds))
    if errors:
        raise RuntimeError(f"{len(errors)} non-200 answers on {path} (e.g. {errors[:3]})")
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def merge(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "rps": sum(r["requests"] for r in runs) / sum(r["seconds"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
    }


# -- main -------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per scenario and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="connections, one request in flight each")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "serving.json")
    args = parser.parse_args()

    load_before = list(os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    uri, version = fit_artifact(workdir / "store")
    recs = records(2_000, seed=99)
    singles_ours_v2 = [ours_v2(r) for r in recs[:500]]
    singles_ours_v1 = [ours_v1([r]) for r in recs[:500]]
    singles_ml = [mlserver_v2([r]) for r in recs[:500]]
    batches = [recs[i : i + 100] for i in range(0, 1_000, 100)]
    batch_ours = [ours_v1(b) for b in batches]
    batch_ml = [mlserver_v2(b) for b in batches]

    port = free_port()
    server = ModelServerProcess(uri, port, workdir / "ours.log", allow_swap=False)
    mlservers: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        server.start()
        for workers in (1, 0):
            mlservers[f"MLServer (parallel_workers={workers})"] = start_mlserver(
                str(Path(uri) / MODEL_FILE), workdir, workers
            )

        # same answers?
        sample = recs[:50]
        ours = httpx.post(f"http://127.0.0.1:{port}/v1/models/{NAME}:predict", json={"instances": sample}).json()
        for label, (_, ml_port) in mlservers.items():
            ml = httpx.post(
                f"http://127.0.0.1:{ml_port}/v2/models/{NAME}/infer",
                content=mlserver_v2(sample),
                headers={"content-type": "application/json"},
            ).json()
            probabilities = [row[1] for row in _rows(ml["outputs"][0])]
            mismatches = sum(
                1 for o, p in zip(ours["predictions"], probabilities, strict=True) if o["score"] != round(p * 100)
            )
            print(f"answer check vs {label}: {len(sample) - mismatches}/{len(sample)} identical scores")
            if mismatches > 1:  # a .5 rounding tie may differ by float noise; more means different models
                raise SystemExit("the two servers do not compute the same model: benchmark aborted")

        scenarios = [
            (
                "V2 single row (Flink path)",
                f"/v2/models/{NAME}/versions/latest/infer",
                singles_ours_v2,
                f"/v2/models/{NAME}/infer",
                singles_ml,
            ),
            ("V1 single row", f"/v1/models/{NAME}:predict", singles_ours_v1, f"/v2/models/{NAME}/infer", singles_ml),
            ("V1 batch of 100", f"/v1/models/{NAME}:predict", batch_ours, f"/v2/models/{NAME}/infer", batch_ml),
        ]
        results: list[dict[str, Any]] = []
        for title, our_path, our_bodies, ml_path, ml_bodies in scenarios:
            runs: dict[str, list[dict[str, float]]] = {"ours": [], **{k: [] for k in mlservers}}
            for _ in range(args.rounds):
                runs["ours"].append(drive(port, our_path, our_bodies, args.seconds, args.concurrency))
                for label, (_, ml_port) in mlservers.items():
                    runs[label].append(drive(ml_port, ml_path, ml_bodies, args.seconds, args.concurrency))
            row = {"scenario": title, **{k: merge(v) for k, v in runs.items()}}
            results.append(row)
            _print_row(row, list(mlservers))
    finally:
        server.stop()
        for process, _ in mlservers.values():
            process.terminate()
            process.wait(timeout=30)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "cpus": os.cpu_count(),
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "model_version": version,
        "python": sys.version.split()[0],
        "load_average_at_start": load_before,
        "load_average_at_end": list(os.getloadavg()),
    }
    args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\nresults written to {args.output}")
    print(_markdown(results, list(mlservers), meta))


def _rows(output: dict) -> list[list[float]]:
    data, shape = output["data"], output["shape"]
    return [data[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]


def _print_row(row: dict[str, Any], baselines: list[str]) -> None:
    ours = row["ours"]
    print(f"\n{row['scenario']}")
    print(
        f"  {'ours (lead_scoring)':34s} {ours['rps']:8.0f} req/s  "
        f"p50 {ours['p50_ms']:6.2f} ms  p99 {ours['p99_ms']:6.2f} ms"
    )
    for label in baselines:
        ml = row[label]
        print(
            f"  {label:34s} {ml['rps']:8.0f} req/s  p50 {ml['p50_ms']:6.2f} ms  p99 {ml['p99_ms']:6.2f} ms"
            f"   -> ours/MLServer throughput x{ours['rps'] / ml['rps']:.2f}, "
            f"p99 x{ours['p99_ms'] / ml['p99_ms']:.2f}"
        )


def _markdown(results: list[dict[str, Any]], baselines: list[str], meta: dict[str, Any]) -> str:
    lines = [
        f"{meta['cpus']} CPUs, {meta['concurrency']} connections, {meta['rounds']} x {meta['seconds']:g} s "
        f"per scenario and server, loopback; load average at start/end "
        f"{meta['load_average_at_start'][0]:.1f}/{meta['load_average_at_end'][0]:.1f}.",
        "",
        "| scenario | server | req/s | p50 ms | p99 ms | ours / this: throughput | ours / this: p99 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        ours = row["ours"]
        lines.append(
            f"| {row['scenario']} | ours | {ours['rps']:.0f} | {ours['p50_ms']:.2f} | {ours['p99_ms']:.2f} | | |"
        )
        for label in baselines:
            ml = row[label]
            lines.append(
                f"| | {label} | {ml['rps']:.0f} | {ml['p50_ms']:.2f} | {ml['p99_ms']:.2f} | "
                f"x{ours['rps'] / ml['rps']:.2f} | x{ours['p99_ms'] / ml['p99_ms']:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
