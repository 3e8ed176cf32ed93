from __future__ import annotations

import pickle
import time
import uuid
from itertools import pairwise

from taskqueue import models
from taskqueue.models import uuid7, uuid7s


def test_uuid7_is_version_7_time_ordered_and_strictly_increasing() -> None:
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(20_000)]  # many share a millisecond
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in ids)
    assert before <= ids[0].int >> 80 <= ids[-1].int >> 80 <= after


def test_uuid7_makes_ordinary_uuid_objects() -> None:
    made = uuid7()
    rebuilt = uuid.UUID(str(made))
    assert made == rebuilt and hash(made) == hash(rebuilt)
    assert pickle.loads(pickle.dumps(made)) == made  # noqa: S301 - our own bytes
    assert made.is_safe is uuid.SafeUUID.unknown
    assert made.bytes == rebuilt.bytes and made.hex == rebuilt.hex


def test_uuid7_counts_across_the_random_bits_without_breaking_the_layout() -> None:
    models._last_counter |= 2**62 - 1  # the next increment carries out of rand_b
    first, second = uuid7(), uuid7()
    assert first < second
    assert second.version == 7
    assert second.variant == "specified in RFC 4122"


def test_a_batch_of_ids_is_what_single_calls_would_make_in_a_row() -> None:
    before = uuid7()
    batch = uuid7s(5_000)
    after = uuid7()
    assert before < batch[0] and batch[-1] < after
    assert batch == sorted(set(batch))
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in batch)
    # One step apart in the counter: rand_b counts up by one.
    assert all(b.int - a.int == 1 for a, b in pairwise(batch))


def test_a_batch_that_carries_out_of_the_random_bits_keeps_the_layout() -> None:
    saved = models._last_counter
    # A counter a minute ahead of the clock, three below the top of rand_b:
    # the batch continues from it, and carries into rand_a within its six.
    ahead = (time.time_ns() // 1_000_000 + 60_000) << 74
    models._last_counter = ahead | 2**62 - 4
    try:
        batch, after = uuid7s(6), uuid7()
    finally:
        models._last_counter = saved  # back to the clock for the other tests
    assert batch == sorted(set(batch)) and after > batch[-1]
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in batch)
    assert [u.int & (2**62 - 1) for u in batch] == [2**62 - 3, 2**62 - 2, 2**62 - 1, 0, 1, 2]
    assert [(u.int >> 64) & 0xFFF for u in batch] == [0, 0, 0, 1, 1, 1]


def test_uuid7_differs_in_a_forked_child() -> None:
    import os

    # As after a burst of ids inside one millisecond: the counter is ahead
    # of the clock, so the parent's next id continues from it.
    saved = models._last_counter
    models._last_counter = (time.time_ns() // 1_000_000 + 60_000) << 74
    read, write = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # child: report its next id and leave at once
            os.write(write, uuid7().bytes)
            os._exit(0)
        os.waitpid(pid, 0)
        child = os.read(read, 16)
        parent = uuid7().bytes
    finally:
        os.close(read)
        os.close(write)
        models._last_counter = saved  # back to the clock for the other tests
    assert child != parent
    assert child[6:] != parent[6:]  # the random part, not just the time
