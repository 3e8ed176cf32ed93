-- The newest operator action id (0 when there is none).
SELECT coalesce(max(id), 0) FROM taskqueue.operator_actions;
