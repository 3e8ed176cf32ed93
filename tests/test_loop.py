"""The pacing of safety-net reads: due at first, then no sooner than their
interval, and never more than their share of the time however long a read
took."""

from __future__ import annotations

import time

from taskqueue.worker.loop import CostPacer


def test_a_cheap_read_is_due_again_after_its_interval() -> None:
    pacer = CostPacer(15.0)
    assert pacer.due()
    pacer.ran(time.monotonic() - 0.002)
    assert not pacer.due()
    assert 14.9 < pacer.next_at - time.monotonic() <= 15.0


def test_a_long_read_waits_a_hundred_times_its_length() -> None:
    pacer = CostPacer(15.0, share=0.01)
    pacer.ran(time.monotonic() - 2.0)  # a walk over two seconds of dead entries
    assert 199.0 < pacer.next_at - time.monotonic() < 201.0
    assert pacer.last_took >= 2.0


def test_once_reads_are_cheap_again_the_interval_returns() -> None:
    pacer = CostPacer(15.0)
    pacer.ran(time.monotonic() - 2.0)
    pacer.ran(time.monotonic())
    assert pacer.next_at - time.monotonic() <= 15.0
