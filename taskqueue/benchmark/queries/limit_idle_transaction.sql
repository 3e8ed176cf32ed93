-- taskqueue bench (pressure): the pinning session ends itself after this long
-- idle in its transaction, so that even a bench killed with SIGKILL cannot
-- hold a server's vacuum horizon for longer than the pinned stage.
--   $1 text: a duration, e.g. '240s'
SELECT set_config('idle_in_transaction_session_timeout', $1, false);
