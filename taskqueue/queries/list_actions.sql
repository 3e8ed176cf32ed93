-- The operator log, newest first, with keyset pagination on id.
--   $1 bigint only actions before this id (NULL: from the newest)
--   $2 int    how many
SELECT id, at, actor, action, scope, result
FROM taskqueue.operator_actions
WHERE $1::bigint IS NULL OR id < $1
ORDER BY id DESC
LIMIT $2;
