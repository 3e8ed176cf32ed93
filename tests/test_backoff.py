from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskqueue.backoff import Backoff, Jitter, exponential_delay, retry_delay

policies = st.builds(
    lambda base, factor, jitter: Backoff(base=base, cap=base * factor, jitter=jitter),
    st.floats(min_value=0.001, max_value=60),
    st.floats(min_value=1, max_value=10_000),
    st.sampled_from(list(Jitter)),
)


@given(policy=policies, attempt=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_retry_delay_stays_within_its_strategys_bounds(
    policy: Backoff, attempt: int, seed: int
) -> None:
    ceiling = min(policy.base * 2.0 ** min(attempt - 1, 1000), policy.cap)
    delay = retry_delay(attempt, policy, random.Random(seed))
    if policy.jitter is Jitter.FULL:
        assert 0 <= delay <= ceiling
    elif policy.jitter is Jitter.EQUAL:
        assert ceiling / 2 <= delay <= ceiling
    else:
        previous = exponential_delay(attempt - 1, policy.base, policy.cap)
        assert policy.base <= delay <= min(policy.cap, 3 * previous)
    assert delay <= policy.cap


@given(attempt=st.integers(min_value=1, max_value=30))
def test_exponential_delay_doubles_until_the_cap(attempt: int) -> None:
    assert exponential_delay(attempt, 1.0, 1e12) == 2.0 ** (attempt - 1)
    assert exponential_delay(attempt, 1.0, 8.0) == min(2.0 ** (attempt - 1), 8.0)


def test_jitter_spreads_delays() -> None:
    rng = random.Random(7)
    delays = {round(retry_delay(5, Backoff(), rng), 6) for _ in range(50)}
    assert len(delays) > 40  # not one synchronised retry time


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(base=10, cap=1)
