"""Retry delays: exponential growth with a cap, spread by jitter.

Without jitter every task that failed together retries together, and a
struggling dependency sees the same spike again and again."""

from __future__ import annotations

import enum
import random

import msgspec


class Jitter(enum.StrEnum):
    FULL = "full"  # uniform(0, d)
    EQUAL = "equal"  # d/2 + uniform(0, d/2): never retries sooner than half the delay
    DECORRELATED = "decorrelated"  # uniform(base, 3 * previous delay), capped


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """How long to wait before the next attempt. ``base`` and ``cap`` in seconds."""

    base: float = 1.0
    cap: float = 3600.0
    jitter: Jitter = Jitter.EQUAL

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise ValueError("backoff base must be > 0")
        if self.cap < self.base:
            raise ValueError("backoff cap must be >= base")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return retry_delay(attempt, self, rng)


def exponential_delay(attempt: int, base: float, cap: float) -> float:
    """min(base * 2^(attempt-1), cap) for the attempt that just failed (1-based)."""
    exponent = max(attempt - 1, 0)
    # 2**exponent overflows float well past any sane cap; stop growing early.
    if exponent >= 64:
        return cap
    return float(min(base * 2.0**exponent, cap))


def retry_delay(attempt: int, policy: Backoff, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    uniform = (rng or _rng).uniform
    ceiling = exponential_delay(attempt, policy.base, policy.cap)
    match policy.jitter:
        case Jitter.FULL:
            return uniform(0.0, ceiling)
        case Jitter.EQUAL:
            return ceiling / 2 + uniform(0.0, ceiling / 2)
        case Jitter.DECORRELATED:
            # "Decorrelated jitter" needs the previous delay; we use the
            # un-jittered delay of the previous attempt so no state is stored.
            previous = exponential_delay(attempt - 1, policy.base, policy.cap)
            return min(policy.cap, uniform(policy.base, 3 * previous))


_rng = random.SystemRandom()
