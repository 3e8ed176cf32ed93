-- Undo 0001_initial: drops every object it made, data included.
DROP VIEW IF EXISTS taskqueue.task_history;
DROP TABLE IF EXISTS taskqueue.task_events;
DROP TABLE IF EXISTS taskqueue.tasks;
DROP TYPE IF EXISTS taskqueue.task_status;
DROP SCHEMA IF EXISTS taskqueue;
