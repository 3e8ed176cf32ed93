-- The dependency reconciler's pass (a safety net): settles waiting tasks
-- whose parents have all finished; see taskqueue.reconcile_waiting() in
-- migration 0010_workflows.
--   $1 int   how many tasks at most
--   $2 text  the worker doing it, for the events
SELECT released, cancelled FROM taskqueue.reconcile_waiting($1::int, $2::text);
