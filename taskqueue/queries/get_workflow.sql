-- One workflow, every task of it (in id order: creation order) with its
-- parents' ids, from the workflow's task_ids (each by primary key) and
-- task_dependencies_child_idx.
--   $1 uuid workflow id
-- Returns no row when the workflow does not exist; one row with NULL task
-- columns for a workflow whose tasks are all gone (pruned).
SELECT w.id AS workflow_id, w.name AS workflow_name, w.created_at AS workflow_created_at,
       t.id, t.workflow_ref AS ref, t.type, t.status::text AS status, t.attempts,
       t.created_at, t.started_at, t.completed_at, t.last_error, t.tenant,
       coalesce((SELECT array_agg(d.parent_id ORDER BY d.parent_id)
                 FROM taskqueue.task_dependencies d WHERE d.child_id = t.id),
                '{}') AS depends_on,
       coalesce((SELECT array_agg(d.on_parent_failure ORDER BY d.parent_id)
                 FROM taskqueue.task_dependencies d WHERE d.child_id = t.id),
                '{}') AS on_parent_failure
FROM taskqueue.workflows w
LEFT JOIN LATERAL (SELECT t.* FROM unnest(w.task_ids) AS m(id)
                   JOIN taskqueue.tasks t ON t.id = m.id) t ON true
WHERE w.id = $1
ORDER BY t.id;
