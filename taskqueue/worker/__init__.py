"""The worker, one module per step of a task's path:

dispatcher (claims) → inflight (the ledger of claimed attempts) → executor
(runs handlers, returns outcomes) → completer (records them); beside them
leases (renewal and rescue), listener (LISTEN wakeups), unhandled (types no
handler here can run) and process (composes the parts, handles stopping)."""

from taskqueue.worker.process import DatabaseUnusable, Worker, make_worker_id

__all__ = ["DatabaseUnusable", "Worker", "make_worker_id"]
