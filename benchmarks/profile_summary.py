"""Summarize a Java Flight Recorder file: where the CPU samples are (diagnostics for the benchmarks).

    .venv/bin/python benchmarks/profile_summary.py taskmanager.jfr [--top 25]

JFR ships with the JDK (`jcmd PID JFR.start duration=30s filename=x.jfr`); `e2e_latency.py --profile-dir DIR`
records the TaskManager during each measured window. Prints the top frames by self samples and the share of
samples per area (Kafka client, Avro, Jackson JSON, Flink network/state, our provider, JDK HTTP ...), from
`jfr print --json --events jdk.ExecutionSample`.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess

AREAS = [
    ("our kserve provider", ("io.leadscoring.flink.kserve",)),
    ("our CONTRACT_CHECK", ("io.leadscoring.flink.contract",)),
    ("Kafka client", ("org.apache.kafka",)),
    ("Avro", ("org.apache.avro", "org.apache.flink.formats.avro")),
    (
        "JSON (Jackson, flink-json)",
        ("com.fasterxml.jackson", "org.apache.flink.shaded.jackson2", "org.apache.flink.formats.json"),
    ),
    ("JDK HTTP client", ("jdk.internal.net.http", "java.net.http")),
    (
        "Flink network / serialization",
        (
            "org.apache.flink.runtime.io",
            "org.apache.flink.runtime.io.network",
            "org.apache.flink.api.common.typeutils",
            "org.apache.flink.table.runtime.typeutils",
        ),
    ),
    ("Flink state / dedup", ("org.apache.flink.runtime.state", "org.apache.flink.table.runtime.operators.deduplicate")),
    (
        "Flink async / ML_PREDICT",
        ("org.apache.flink.streaming.api.operators.async", "org.apache.flink.table.runtime.operators.ml"),
    ),
    (
        "generated code (Calc, projections)",
        (
            "org.apache.flink.table.runtime.generated",
            "StreamExecCalc",
            "Projection$",
            "SinkConversion",
            "BatchCalc",
            "StreamExec",
        ),
    ),
    ("Flink runtime (mailbox, tasks)", ("org.apache.flink",)),
    ("JDK", ("java.", "jdk.", "sun.")),
]


def area_of(frames: list[str]) -> str:
    for frame in frames:  # the innermost frame that belongs to a named area
        for area, prefixes in AREAS[:-2]:
            if any(p in frame for p in prefixes):
                return area
    for area, prefixes in AREAS[-2:]:
        if frames and any(frames[0].startswith(p) for p in prefixes):
            return area
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jfr")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    raw = subprocess.run(
        ["jfr", "print", "--json", "--stack-depth", "64", "--events", "jdk.ExecutionSample", args.jfr],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    events = json.loads(raw)["recording"]["events"]
    self_counts: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for ev in events:
        frames = [
            f"{fr['method']['type']['name']}.{fr['method']['name']}"
            for fr in (ev["values"]["stackTrace"] or {}).get("frames", [])
        ]
        if not frames:
            continue
        self_counts[frames[0]] += 1
        areas[area_of(frames)] += 1
        thread = (ev["values"].get("sampledThread") or {}).get("javaName") or "?"
        threads[thread.split(" (")[0][:60]] += 1
    total = sum(self_counts.values()) or 1
    print(f"{total} samples")
    print("\nby area (innermost frame in a known library):")
    for area, n in areas.most_common():
        print(f"  {100 * n / total:5.1f}%  {area}")
    print("\nby thread:")
    for thread, n in threads.most_common(12):
        print(f"  {100 * n / total:5.1f}%  {thread}")
    print(f"\ntop {args.top} frames by self samples:")
    for frame, n in self_counts.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
