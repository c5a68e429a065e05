"""retry.py: the one exponential wait, inside tenacity loops and outside them (the supervisor's restarts)."""

from __future__ import annotations

import pytest
import tenacity

from lead_scoring.retry import WaitTimeout, backoff, backoff_delay, wait_until


def test_the_backoff_doubles_from_its_first_wait_up_to_its_cap_with_a_little_jitter() -> None:
    delays = [backoff_delay(n, 1.0, 30.0) for n in range(7)]
    for got, want in zip(delays, [1, 2, 4, 8, 16, 30, 30], strict=True):
        assert want <= got <= want + 0.1


def test_a_tenacity_loop_sleeps_the_same_waits() -> None:
    slept: list[float] = []
    calls = iter([ValueError, ValueError, ValueError, "done"])

    def flaky() -> str:
        got = next(calls)
        if got is ValueError:
            raise ValueError("not yet")
        return got

    retrying = tenacity.Retrying(wait=backoff(2.0, 120.0), sleep=slept.append, reraise=True)
    assert retrying(flaky) == "done"
    assert [round(s) for s in slept] == [round(backoff_delay(n, 2.0, 120.0)) for n in range(3)] == [2, 4, 8]


def test_wait_until_names_what_it_waited_for_and_the_last_state() -> None:
    with pytest.raises(WaitTimeout, match=r"the answer not reached after 0 s \(still 41\)"):
        wait_until(lambda: None, timeout_s=0.05, interval_s=0.01, what="the answer", last_state=lambda: "still 41")
