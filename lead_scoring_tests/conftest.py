"""Shared test setup: the real-stack and shared-pipeline plugins, and a private state folder for the whole session."""

import os

import pytest

pytest_plugins = [
    "lead_scoring_tests.fixtures.stack",
    "lead_scoring_tests.fixtures.pipeline",
    "lead_scoring_tests.fixtures.gcs",
]


@pytest.fixture(scope="session", autouse=True)
def _private_state(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write a developer's .state/ (warehouse, artifacts, running servers)."""
    home = tmp_path_factory.mktemp("lead-scoring-home")
    previous = {k: os.environ.get(k) for k in ("LEAD_SCORING_HOME", "LEAD_SCORING_PROFILE")}
    os.environ["LEAD_SCORING_HOME"] = str(home)
    os.environ["LEAD_SCORING_PROFILE"] = "local"
    yield home
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
