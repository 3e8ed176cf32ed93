-- Recurring tasks: schedules, the ledger of what became of each slot, and the
-- schedule and slot a fired task came from.
-- depends: 0002_claim_by_type

-- Nullable without a default: adding them rewrites nothing, and the tasks
-- table gets no new index, so enqueue, claim and complete cost what they did.
ALTER TABLE taskqueue.tasks
    ADD COLUMN schedule text,
    ADD COLUMN slot timestamptz;

-- One row per schedule. next_run_at is the oldest slot not fired yet; firing
-- advances it with a compare-and-set (WHERE next_run_at = the value read), so
-- of any number of workers checking at once exactly one fires a slot.
CREATE TABLE taskqueue.schedules (
    name            text PRIMARY KEY,
    cron            text,                -- 5 or 6 fields (leading seconds), or an @alias
    every_seconds   integer,             -- or a fixed interval, counted from the Unix epoch
    timezone        text NOT NULL DEFAULT 'UTC',
    type            text NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    queue           text NOT NULL DEFAULT 'default',
    priority        integer NOT NULL DEFAULT 0,
    max_retries     integer NOT NULL DEFAULT 3,
    timeout_seconds double precision NOT NULL DEFAULT 30,
    catch_up        text NOT NULL DEFAULT 'latest',
    overlap         text NOT NULL DEFAULT 'allow',
    paused          boolean NOT NULL DEFAULT false,
    source          text NOT NULL DEFAULT 'api',   -- 'code': re-asserted by every worker start
    next_run_at     timestamptz NOT NULL,
    last_task_id    uuid,                -- the newest task it fired, for overlap = 'skip'
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_name_not_empty CHECK (name <> ''),
    CONSTRAINT schedules_one_timing CHECK ((cron IS NULL) <> (every_seconds IS NULL)),
    CONSTRAINT schedules_every_positive CHECK (every_seconds > 0),
    CONSTRAINT schedules_catch_up CHECK (catch_up IN ('none', 'latest', 'all')),
    CONSTRAINT schedules_overlap CHECK (overlap IN ('allow', 'skip')),
    CONSTRAINT schedules_source CHECK (source IN ('api', 'code'))
);

-- What every worker's once-a-second check reads: only due, unpaused rows, so
-- its cost follows the number of due schedules, not the number of schedules.
CREATE INDEX schedules_due_idx ON taskqueue.schedules (next_run_at) WHERE NOT paused;

-- Append-only: one row per slot (fired, or skipped because the previous task
-- was still live), per manual trigger, and per catch-up that left slots
-- unfired ('missed', with a count and the range in detail). No foreign key:
-- like task_events, it outlives a deleted schedule.
CREATE TABLE taskqueue.schedule_fires (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule text NOT NULL,
    slot     timestamptz,                -- NULL for 'triggered' and 'missed'
    at       timestamptz NOT NULL DEFAULT now(),
    outcome  text NOT NULL,
    task_id  uuid,
    detail   jsonb,
    CONSTRAINT schedule_fires_outcome CHECK (outcome IN ('fired', 'skipped', 'triggered', 'missed'))
) WITH (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);

-- The slot key: a slot of a schedule is recorded, and so becomes a task, at
-- most once, whatever else goes wrong (a schedule deleted and re-created, an
-- operator moving next_run_at back).
CREATE UNIQUE INDEX schedule_fires_slot_idx ON taskqueue.schedule_fires (schedule, slot)
    WHERE slot IS NOT NULL;
CREATE INDEX schedule_fires_recent_idx ON taskqueue.schedule_fires (schedule, id);
