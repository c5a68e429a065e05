"""The Dagster UI in a real browser: `dagster dev` on a free port, Debian's Chromium driven by Playwright.

The test opens the training group's asset graph, launches "Materialize all" from the UI, waits for the
run to succeed, and leaves screenshots in `test-artifacts/` (plus the dagster dev log). It uses a
temporary DAGSTER_HOME and LEAD_SCORING_HOME, and points Kafka at a free port (nothing running there:
the stream sensors skip), so it never touches a developer's state or the session's stack.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lead_scoring.settings import project_root
from lead_scoring.stack.ports import free_ports

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("LEAD_SCORING_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TRAINING_ASSETS = {"crm_leads_raw", "training_data", "lead_scoring_model", "model_artifact", "model_card"}
LOCATION = "lead_scoring"


def artifacts_dir() -> Path:
    path = project_root() / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@dataclass
class DagsterUI:
    url: str
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        resp = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
        resp.raise_for_status()
        body = resp.json()
        assert "errors" not in body, body
        return body["data"]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter, limit: 20) { ... on Runs { results {
  runId status assetSelection { path } } } } }"""


def _wait_loaded(ui: DagsterUI, proc: subprocess.Popen, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dagster dev exited with {proc.returncode}:\n{ui.log_tail()}")
        try:
            entries = ui.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            entry = next(e for e in entries if e["name"] == LOCATION)
            kind = (entry["locationOrLoadError"] or {}).get("__typename")
            if entry["loadStatus"] == "LOADED" and kind == "RepositoryLocation":
                return
            if kind == "PythonError":
                raise AssertionError(f"code location failed to load: {entry['locationOrLoadError']['message']}")
            last = f"{entry['loadStatus']} {kind}"
        except (httpx.HTTPError, StopIteration, KeyError) as exc:
            last = repr(exc)
        time.sleep(2)
    raise AssertionError(f"code location not loaded after {timeout_s:.0f} s ({last}):\n{ui.log_tail()}")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    """`dagster dev` (webserver + daemon) on a free 127.0.0.1 port, stopped at the end of the module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set LEAD_SCORING_CHROMIUM)")
    root = tmp_path_factory.mktemp("dagster-ui")
    dagster_home, state = root / "dagster_home", root / "state"
    dagster_home.mkdir()
    shutil.copy(project_root() / "dagster.yaml", dagster_home / "dagster.yaml")
    workspace = root / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: lead_scoring.definitions\n"
        f"      location_name: {LOCATION}\n      working_directory: {project_root()}\n"
    )
    port, no_kafka = free_ports(2)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "LEAD_SCORING_HOME": str(state),
        "LEAD_SCORING_PROFILE": "local",
        "LEAD_SCORING_KAFKA_PORT": str(no_kafka),
    }
    log = artifacts_dir() / "dagster-dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ui = DagsterUI(url=f"http://127.0.0.1:{port}", log=log)
    try:
        _wait_loaded(ui, proc)
        yield ui
    finally:
        # dagster dev shuts its webserver, daemon and code servers down on SIGINT; force after a grace period
        for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived their parent (same process group, started by this fixture)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for_run(ui: DagsterUI, run_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    status = "NOT_STARTED"
    while time.monotonic() < deadline:
        status = next(r["status"] for r in ui.graphql(RUNS)["runsOrError"]["results"] if r["runId"] == run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(3)
    return status


def _launch_materialize_all(ui: DagsterUI, page, group: str) -> dict:
    """Click "Materialize all" on a group's graph; the run it launched (no launchpad: no config is required)."""
    from playwright.sync_api import expect

    page.goto(f"{ui.url}/locations/{LOCATION}/asset-groups/{group}", wait_until="domcontentloaded")
    page.get_by_role("button", name="Materialize all").click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    # the UI asks once when upstream assets of other groups were never materialized (not a config error)
    confirm = page.get_by_role("button", name="Confirm")
    expect(toast.or_(confirm)).to_be_visible(timeout=60_000)
    if confirm.is_visible():
        confirm.click()
    expect(toast).to_be_visible(timeout=60_000)
    short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
    [run] = [r for r in ui.graphql(RUNS)["runsOrError"]["results"] if r["runId"].startswith(short_id)]
    return run


def test_materialize_the_training_group_from_the_ui(dagster_ui: DagsterUI):
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts_dir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The first-visit "Join the Dagster community" dialog may pop up over any page.
            page.add_locator_handler(
                page.get_by_text("Join the Dagster community"), lambda: page.get_by_role("button", name="Skip").click()
            )
            try:
                # the whole graph, by group
                page.goto(f"{dagster_ui.url}/asset-groups", wait_until="domcontentloaded")
                for group in ("training", "serving", "streaming", "monitoring"):
                    expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(shots / "ui-asset-groups.png"))

                # the training group's asset graph, and "Materialize all" on it
                page.goto(f"{dagster_ui.url}/locations/{LOCATION}/asset-groups/training", wait_until="domcontentloaded")
                for asset in sorted(TRAINING_ASSETS):
                    expect(page.get_by_text(asset, exact=True).first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(shots / "ui-training-group-before.png"))
                run = _launch_materialize_all(dagster_ui, page, "training")
                assert {"/".join(a["path"]) for a in run["assetSelection"]} == TRAINING_ASSETS

                # the run page turns to Success (in-process executor: all steps in one run worker)
                page.goto(f"{dagster_ui.url}/runs/{run['runId']}", wait_until="domcontentloaded")
                status = _wait_for_run(dagster_ui, run["runId"], timeout_s=420)
                assert status == "SUCCESS", f"run {run['runId']} ended {status}:\n{dagster_ui.log_tail()}"
                expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(shots / "ui-training-run.png"))

                # back on the graph: every training asset has a materialization and the gate passed
                page.goto(f"{dagster_ui.url}/locations/{LOCATION}/asset-groups/training", wait_until="domcontentloaded")
                expect(page.get_by_text("Never materialized")).to_have_count(0, timeout=60_000)
                expect(page.get_by_text("1 / 1 Passed").first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(shots / "ui-asset-graph.png"))

                # the automation page lists the sensors and schedules, all running
                page.goto(f"{dagster_ui.url}/automation", wait_until="domcontentloaded")
                for name in (
                    "streaming_topics_sensor",
                    "e2e_latency_sensor",
                    "retraining_trigger_sensor",
                    "weekly_retraining",
                    "automation_condition_sensor",
                ):
                    expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(shots / "ui-automation.png"))
            except Exception:
                page.screenshot(path=str(shots / "ui-failure.png"))
                raise
        finally:
            browser.close()


def test_materialize_all_of_the_model_lifecycle_group_asks_for_nothing_and_succeeds(dagster_ui: DagsterUI):
    """The first click a newcomer makes: the action assets run with their defaults, do nothing and say so."""
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts_dir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.add_locator_handler(
                page.get_by_text("Join the Dagster community"), lambda: page.get_by_role("button", name="Skip").click()
            )
            try:
                run = _launch_materialize_all(dagster_ui, page, "model_lifecycle")
                assert {"/".join(a["path"]) for a in run["assetSelection"]} >= {
                    "challenger_deployment",
                    "champion_promotion",
                    "champion_revert",
                    "full_rescore",
                }
                status = _wait_for_run(dagster_ui, run["runId"], timeout_s=300)
                assert status == "SUCCESS", f"run {run['runId']} ended {status}:\n{dagster_ui.log_tail()}"
                page.goto(f"{dagster_ui.url}/runs/{run['runId']}", wait_until="domcontentloaded")
                expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(shots / "ui-model-lifecycle-materialize-all.png"))
            except Exception:
                page.screenshot(path=str(shots / "ui-failure-model-lifecycle.png"))
                raise
        finally:
            browser.close()
