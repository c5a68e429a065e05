"""Waiting and retrying, in one place, on tenacity.

* `wait_until(check, ...)`: poll `check()` until it returns something other than None (a job is
  RUNNING, a server answers ready, a savepoint completed), or raise `WaitTimeout` naming what was
  awaited and the last answer seen.
* `backoff(...)`: the exponential wait every retry loop of the project uses (workers, Salesforce, the
  Confluent client, consumer lag), so "how long between attempts" is one decision; `backoff_delay(n)` is the
  same wait for a loop that is not tenacity's (the stack supervisor's restarts of a process).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited did not happen in time; the message says what and the last state seen."""


def backoff(initial_s: float = 0.5, max_s: float = 30.0) -> tenacity.wait.wait_base:
    """initial, 2x initial, 4x initial ... capped at `max_s` (with a little jitter against lock-step)."""
    return tenacity.wait_exponential(multiplier=initial_s, min=initial_s, max=max_s) + tenacity.wait_random(
        0, initial_s / 10
    )


def backoff_delay(failures: int, initial_s: float = 1.0, max_s: float = 30.0) -> float:
    """`backoff(initial_s, max_s)`'s wait after `failures` consecutive failures (initial_s * 2**failures, capped)."""
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = failures + 1
    return backoff(initial_s, max_s)(state)


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str,
    last_state: Callable[[], str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `check` every `interval_s` until it returns a value (not None); that value is returned.

    Exceptions from `check` propagate at once (a failed job must not be polled for minutes).
    On timeout: `WaitTimeout("<what> not reached after N s (<last_state()>)")`.
    """
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout_s),
        wait=tenacity.wait_fixed(interval_s),
        retry=tenacity.retry_if_result(lambda result: result is None),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(check)
    except tenacity.RetryError:
        detail = f" ({last_state()})" if last_state else ""
        raise WaitTimeout(f"{what} not reached after {timeout_s:.0f} s{detail}") from None
