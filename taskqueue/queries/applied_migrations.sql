-- Migration ids yoyo has recorded as applied, oldest first.
SELECT migration_id FROM _yoyo_migration ORDER BY migration_id;
