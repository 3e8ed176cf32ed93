from __future__ import annotations

import pickle
import time
import uuid

from taskqueue import models
from taskqueue.models import uuid7


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


def test_uuid7_differs_in_a_forked_child() -> None:
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next id and leave at once
        os.write(write, uuid7().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 16)
    os.close(read)
    os.close(write)
    assert child != uuid7().bytes
    assert child[6:] != uuid7().bytes[6:]  # the random part, not just the time
