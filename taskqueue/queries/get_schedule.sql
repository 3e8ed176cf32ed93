-- One schedule by name.
--   $1 text name
SELECT * FROM taskqueue.schedules WHERE name = $1::text;
