"""Keeping the history's daily partitions (README: "History partitions"):
every pass makes the next days' partitions of task_events that are missing
and drops the days older than event retention (TASKQUEUE_RETAIN_EVENTS),
whole partitions at a time. Every worker runs it; there is no leader: the
database functions take turns on a lock, so a pass that finds the work done
costs a catalog read. With TASKQUEUE_DIRECT_URL each pass runs on a
connection of its own to the server (DDL waiting on its lock must not hold
one of a pooler's few server connections), closed after the pass."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from taskqueue import db, store
from taskqueue.worker.loop import PeriodicLoop

logger = logging.getLogger("taskqueue.worker")

DAYS_AHEAD = 3  # partitions ready this far ahead: three days of missed passes lose nothing
INTERVAL_SECONDS = 600.0
APPLICATION_NAME = "taskqueue-worker-maintenance"


class PartitionKeeper(PeriodicLoop):
    name = "partition keeper"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        retain_events: timedelta,
        days_ahead: int = DAYS_AHEAD,
        interval: float = INTERVAL_SECONDS,
        direct_url: str = "",
    ) -> None:
        # The first pass comes soon after start: a worker started after a
        # long outage finds today's partition missing.
        super().__init__(interval, first_delay=min(5.0, interval))
        self._pool = pool
        self._direct_url = direct_url
        self._retain_events = retain_events
        self._days_ahead = days_ahead
        self.created = 0
        self.dropped = 0
        self.denied = 0

    def readings(self) -> dict[str, int]:
        return {
            **super().readings(),
            "created": self.created,
            "dropped": self.dropped,
            "denied": self.denied,
        }

    async def run_once(self) -> tuple[list[str], list[store.EventPartition]]:
        """(partitions made, partitions dropped) by this pass."""
        try:
            async with db.direct_or_pool(self._pool, self._direct_url, APPLICATION_NAME) as conn:
                made = await store.ensure_event_partitions(conn, self._days_ahead)
                cutoff = await store.database_now(conn) - self._retain_events
                dropped = await store.drop_event_partitions(conn, cutoff)
        except asyncpg.InsufficientPrivilegeError as exc:
            # A role without EXECUTE on the maintenance functions (roles.sql
            # not run again after upgrading) must not stop the worker: events
            # still land (in the default partition, which the alert watches).
            self.denied += 1
            logger.error("cannot maintain the history's partitions: %s", exc)
            return [], []
        self.created += len(made)
        self.dropped += len(dropped)
        if made:
            logger.info("history partitions created: %s", ", ".join(made))
        for old in dropped:
            logger.info(
                "history partition %s dropped (events from %s to %s, about %s rows)",
                old.name,
                old.starts,
                old.ends,
                "?" if old.rows is None else old.rows,
            )
        return made, dropped
