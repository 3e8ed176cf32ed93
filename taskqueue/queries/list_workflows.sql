-- Workflows newest first (ids are UUIDv7), with how many of their tasks are
-- in each state, for the CLI and the dashboard.
--   $1 uuid cursor: only ids below this one (NULL: from the newest)
--   $2 int  page size
--   $3 text tenant: only workflows whose tasks all belong to it (NULL: all), as
--           a tenant may read one (taskqueue.tenancy): a workflow an operator
--           made of several tenants' tasks is none of theirs
SELECT w.id, w.name, w.created_at,
       count(t.id) AS total,
       count(t.id) FILTER (WHERE t.status IN ('waiting', 'queued', 'running')) AS unfinished,
       count(t.id) FILTER (WHERE t.status = 'succeeded') AS succeeded,
       count(t.id) FILTER (WHERE t.status = 'failed') AS failed,
       count(t.id) FILTER (WHERE t.status = 'cancelled') AS cancelled
FROM (SELECT * FROM taskqueue.workflows
      WHERE ($1::uuid IS NULL OR id < $1)
        AND ($3::text IS NULL
             -- Every task is the tenant's (NULL, not true, when none is left).
             OR (SELECT bool_and(x.tenant IS NOT DISTINCT FROM $3)
                 FROM unnest(workflows.task_ids) AS m(id)
                 JOIN taskqueue.tasks x ON x.id = m.id))
      ORDER BY id DESC
      LIMIT $2) w
-- A workflow's tasks by primary key (workflows.task_ids); pruned ones are gone.
LEFT JOIN LATERAL (SELECT t.* FROM unnest(w.task_ids) AS m(id)
                   JOIN taskqueue.tasks t ON t.id = m.id) t ON true
GROUP BY w.id, w.name, w.created_at
ORDER BY w.id DESC;
