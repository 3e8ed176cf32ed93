-- Operator actions after an id, oldest first (the live stream's queue and
-- action events).
--   $1 bigint after this action id
SELECT id, at, actor, action, scope, result
FROM taskqueue.operator_actions
WHERE id > $1
ORDER BY id
LIMIT 1000;
