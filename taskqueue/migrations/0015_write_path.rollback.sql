-- The write-path functions go with the table that lists them.
DO $$
DECLARE
    made text;
BEGIN
    FOR made IN SELECT function FROM taskqueue.write_statements LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s', made);
    END LOOP;
END
$$;
DROP TABLE taskqueue.write_statements;
DROP TYPE taskqueue.task_input;
