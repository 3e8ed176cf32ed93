-- Autovacuum of tasks is paced (autovacuum_vacuum_cost_delay 10 ms, from 0:
-- unpaced since 0001_initial). The claim path does not need vacuum to stay
-- fast (it starts from each lane's floor and reads tasks by id), so what
-- an unpaced vacuum bought was only less bloat, and what it cost showed
-- when a held horizon was let go: one vacuum then had 3.6 million dead rows
-- to clear after 30 minutes pinned at 1,000 tasks/s, and clearing them at
-- full speed on the same cores as the workers put pickup p99 at 10.8x the
-- clean figure for the minute after the release (27x and 6x in other runs).
-- Paced, the same run measured 2.6x. At 10 ms a vacuum still dirties about
-- 1,000 pages a second, far more than a queue's steady churn leaves behind.
-- depends: 0023_recent_from_counts

ALTER TABLE taskqueue.tasks SET (autovacuum_vacuum_cost_delay = 10);
