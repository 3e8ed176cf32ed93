-- The expiry sweep (queries/expire_tasks.sql) reads only its own index.
-- tasks_expiry_idx was partial on status = 'queued', like the claim's
-- tasks_claim_idx, so the sweep's WHERE fitted both, and with statistics that
-- count few queued rows the planner took the claim index and filtered
-- expires_at, stepping over every entry in it: while vacuum was held back,
-- every dead one (measured: 5 ms a sweep growing to 120 ms and 27,000 pages
-- in 10 minutes pinned at 1,000 tasks/s, with no task carrying an expiry).
-- Keyed on unfinished tasks that have an expiry, with no status in its
-- predicate, and the sweep tests status as text, which no index predicate
-- matches: tasks without an expiry never enter it, and nothing else fits.
-- depends: 0018_graph_drain

DROP INDEX taskqueue.tasks_expiry_idx;
CREATE INDEX tasks_expiry_idx ON taskqueue.tasks (expires_at)
    WHERE expires_at IS NOT NULL AND completed_at IS NULL;
