"""Schedules at run time: create, read, change, pause, resume, trigger and
delete them, and make sure the ones defined in code exist (``tq.schedules``;
workers call ``define_all`` when they start). A definition's task settings
are checked as a task's, against the registry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

from taskqueue import db, enqueue, store
from taskqueue.errors import InvalidSchedule, ScheduleConflict, ScheduleNotFound
from taskqueue.limits import check_page
from taskqueue.models import (
    CatchUp,
    FireTime,
    NewSchedule,
    NewTask,
    Overlap,
    Schedule,
    ScheduleDetails,
    Task,
    uuid7,
)
from taskqueue.schedules import timing
from taskqueue.schedules.definition import ScheduleFields, define
from taskqueue.schedules.definition import choice as _choice

if TYPE_CHECKING:
    from taskqueue.registry import Registry


class Schedules:
    """The schedules of one database, through ``runner``."""

    def __init__(self, runner: db.Runner, registry: Registry | None) -> None:
        self._db = runner
        self._registry = registry

    async def add(
        self,
        name: str,
        *,
        type: str,
        cron: str | None = None,
        **fields: Unpack[ScheduleFields],
    ) -> Schedule:
        """Add a recurring task: ``cron`` (5 fields, 6 with leading seconds, or
        an @alias, in ``timezone``) or ``every_seconds``. Its first slot is the
        first after the database's now. A name in use raises ScheduleConflict;
        a bad field raises InvalidSchedule (InvalidTask) naming it."""
        return await self.create(define(name, type=type, cron=cron, **fields))

    async def create(self, new: NewSchedule) -> Schedule:
        row = self._row(new, await self._first_slot(new))
        created = await self._db.run(store.insert_schedule, row)
        if created is None:
            raise ScheduleConflict(
                f"schedule {new.name!r} already exists: change it (PATCH) or delete it first"
            )
        return created

    async def define_all(self, defined: Sequence[NewSchedule]) -> list[Schedule]:
        """Make sure schedules defined in code exist as the code says, keeping
        an operator's pause (workers call this at start). Returns the ones
        added or changed."""
        if not defined:
            return []
        now = await self._db.run(store.schedule_now)
        rows = [self._row(new, timing.first_after(_timing_of(new), now)) for new in defined]
        changed = [await self._db.run(store.define_schedule, row) for row in rows]
        return [schedule for schedule in changed if schedule is not None]

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[Schedule]:
        """By name; for the next page pass ``after=`` the last one's name."""
        check_page(limit, InvalidSchedule)
        if after is not None and not timing.could_exist(after):
            raise InvalidSchedule("cursor", "not a schedule name")
        return await self._db.run(store.list_schedules, after=after, limit=limit)

    async def get(self, name: str) -> Schedule:
        schedule = await self._db.run(store.get_schedule, _existing(name))
        if schedule is None:
            raise ScheduleNotFound(name)
        return schedule

    async def details(self, name: str, *, upcoming: int = 5, recent: int = 10) -> ScheduleDetails:
        """The schedule, its next ``upcoming`` slots after now (in its zone and
        in UTC) and its newest ``recent`` ledger rows with their tasks' status."""
        schedule = await self.get(name)
        now = await self._db.run(store.schedule_now)
        zone = timing.zone_of(schedule.timezone)
        when = timing.parse_timing(schedule.cron, schedule.every_seconds, schedule.timezone)
        return ScheduleDetails(
            schedule=schedule,
            next_fires=[
                FireTime(local=slot.astimezone(zone), utc=slot)
                for slot in timing.upcoming(when, now, upcoming)
            ],
            recent_fires=await self._db.run(store.recent_schedule_fires, name, limit=recent),
        )

    async def update(self, name: str, /, **changes: Any) -> Schedule:
        """Change fields of a schedule defined at run time (any of
        NewSchedule's but ``name``; ``None`` task settings mean the type's
        default). Giving ``cron`` drops ``every_seconds`` and the other way
        round. The next slot moves only if the timing changed."""
        unknown = set(changes) - set(NewSchedule.__struct_fields__) | ({"name"} & set(changes))
        if unknown:
            raise InvalidSchedule(sorted(unknown)[0], "not a field that can be changed")
        current = await self.get(name)
        if current.source == "code":
            raise ScheduleConflict(
                f"schedule {name!r} is defined in code: change it there (workers re-assert it"
                " when they start); pause and resume work here"
            )
        merged = {field: getattr(current, field) for field in NewSchedule.__struct_fields__}
        if changes.get("cron") is not None and "every_seconds" not in changes:
            merged["every_seconds"] = None
        if changes.get("every_seconds") is not None and "cron" not in changes:
            merged["cron"] = None
        merged.update(changes)
        merged["catch_up"] = _choice(CatchUp, merged["catch_up"], "catch_up")
        merged["overlap"] = _choice(Overlap, merged["overlap"], "overlap")
        new = NewSchedule(**merged)
        row = self._row(new, await self._first_slot(new))
        updated = await self._db.run(store.update_schedule, row)
        if updated is None:  # deleted, or taken over by code, meanwhile
            await self.get(name)
            raise ScheduleConflict(f"schedule {name!r} is defined in code: change it there")
        return updated

    async def pause(self, name: str) -> Schedule:
        """Stop it firing until resumed; a paused one raises ScheduleConflict."""
        paused = await self._db.run(store.pause_schedule, _existing(name))
        if paused is None:
            await self.get(name)
            raise ScheduleConflict(f"schedule {name!r} is already paused")
        return paused

    async def resume(self, name: str) -> Schedule:
        """Fire again from the first slot after now (slots passed while paused
        are not fired); one that is not paused raises ScheduleConflict."""
        current = await self.get(name)
        if not current.paused:
            raise ScheduleConflict(f"schedule {name!r} is not paused")
        when = timing.parse_timing(current.cron, current.every_seconds, current.timezone)
        now = await self._db.run(store.schedule_now)
        resumed = await self._db.run(store.resume_schedule, name, timing.first_after(when, now))
        if resumed is None:
            await self.get(name)
            raise ScheduleConflict(f"schedule {name!r} is not paused")
        return resumed

    async def trigger(self, name: str) -> Task:
        """Enqueue one task of the schedule now (paused or not), outside its slots."""
        task = await self._db.run(store.trigger_schedule, _existing(name), uuid7())
        if task is None:
            raise ScheduleNotFound(name)
        return task

    async def delete(self, name: str) -> None:
        """Remove it; the tasks it fired and their history stay. A schedule
        defined in code comes back when a worker that defines it starts."""
        if not await self._db.run(store.delete_schedule, _existing(name)):
            raise ScheduleNotFound(name)

    async def _first_slot(self, new: NewSchedule) -> datetime:
        when = _timing_of(new)
        return timing.first_after(when, await self._db.run(store.schedule_now))

    def _row(self, new: NewSchedule, first_slot: datetime) -> store.ScheduleRow:
        """Validate a definition's task settings as a task's (against the
        registry) and fill in the type's defaults."""
        task = enqueue.resolve(
            NewTask(
                type=new.type,
                payload=new.payload,
                queue=new.queue,
                name=new.name,
                priority=new.priority,
                max_retries=new.max_retries,
                timeout_seconds=new.timeout_seconds,
            ),
            self._registry,
        )
        return store.ScheduleRow(
            name=new.name,
            cron=None if new.cron is None else new.cron.strip(),
            every_seconds=new.every_seconds,
            timezone=new.timezone,
            type=task.type,
            payload=task.payload,
            queue=task.queue,
            priority=task.priority,
            max_retries=task.max_retries,
            timeout_seconds=task.timeout_seconds,
            catch_up=new.catch_up,
            overlap=new.overlap,
            next_run_at=first_slot,
        )


def _timing_of(new: NewSchedule) -> timing.Timing:
    timing.validate_name(new.name)
    return timing.parse_timing(new.cron, new.every_seconds, new.timezone)


def _existing(name: str) -> str:
    # A name no schedule can have (a NUL byte, say) is not looked up at all:
    # it is simply not found, and never reaches the database as an error.
    if not timing.could_exist(name):
        raise ScheduleNotFound(name)
    return name
