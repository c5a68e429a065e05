"""Where the project keeps its state, and which profile (local or gcp) is active.

Nothing here runs at import time: every value is read when a function is called, so tests and the
Dagster webserver can set the environment before building definitions.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

PROFILE_ENV_VAR = "LEAD_SCORING_PROFILE"
HOME_ENV_VAR = "LEAD_SCORING_HOME"


class Profile(str, enum.Enum):
    LOCAL = "local"
    GCP = "gcp"


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message names the variable and the fix."""


def current_profile() -> Profile:
    """The profile chosen by LEAD_SCORING_PROFILE (default: local)."""
    raw = os.environ.get(PROFILE_ENV_VAR, Profile.LOCAL.value).strip().lower() or Profile.LOCAL.value
    try:
        return Profile(raw)
    except ValueError:
        allowed = ", ".join(p.value for p in Profile)
        raise ConfigurationError(
            f"{PROFILE_ENV_VAR}={raw!r} is not a known profile; set it to one of: {allowed}"
        ) from None


def project_root() -> Path:
    """The checkout this package runs from (the folder holding pyproject.toml)."""
    return Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """Root of everything the local profile writes: warehouse, artifacts, stack data, logs.

    Defaults to `<checkout>/.state`; LEAD_SCORING_HOME moves it (tests point it at a tmp dir).
    """
    override = os.environ.get(HOME_ENV_VAR)
    path = Path(override).expanduser() if override else project_root() / ".state"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_env(name: str, purpose: str) -> str:
    """Read a required environment variable or fail with a message naming it."""
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set (needed for {purpose})")
    return value


RETRAIN_CRON_ENV_VAR = "LEAD_SCORING_RETRAIN_CRON"
DEFAULT_RETRAIN_CRON = "0 3 * * 1"  # Mondays 03:00 UTC


def retraining_cron() -> str:
    """Cron of the weekly retraining schedule (LEAD_SCORING_RETRAIN_CRON overrides it)."""
    cron = os.environ.get(RETRAIN_CRON_ENV_VAR, DEFAULT_RETRAIN_CRON).strip()
    if len(cron.split()) != 5:
        raise ConfigurationError(f"{RETRAIN_CRON_ENV_VAR}={cron!r} is not a 5-field cron expression")
    return cron
