-- A worker (w, a row of taskqueue.workers) is live while it has not stopped
-- and its last heartbeat is at most three of its intervals old; one that has
-- not stopped but is older is lost (killed, partitioned, its host gone).
(w.state <> 'stopped'
 AND w.last_heartbeat_at >= now() - make_interval(secs => 3 * w.heartbeat_seconds))
