-- Whether the history is being sealed (the trigger of history_chain_on.sql
-- exists), and how many links were written.
SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger
               WHERE tgname = 'task_events_sealed'
                 AND tgrelid = 'taskqueue.task_events'::regclass) AS sealing,
       (SELECT count(*) FROM taskqueue.history_links) AS links;
