-- Schedules by name, with keyset pagination on the name.
--   $1 text names after this one (NULL: from the first)
--   $2 int  page size
SELECT *
FROM taskqueue.schedules
WHERE $1::text IS NULL OR name > $1::text
ORDER BY name
LIMIT $2;
