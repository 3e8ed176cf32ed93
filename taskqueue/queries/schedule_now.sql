-- The database's clock: every slot a schedule computes starts from it, never
-- from a host's clock, so hosts whose clocks disagree still agree on slots.
--   $1 timestamptz a fixed time instead (tests; NULL: now())
SELECT coalesce($1::timestamptz, now()) AS now;
