"""Which API routes a tenant's token may use: its own tasks, workflows,
counts, failures and events (each scoped to it by taskqueue.tenancy), and
its own quota, read only. Everything else (queue settings, workers,
schedules, the operator log, other tenants' quotas, the metrics) is an
operator's: 403. A list of what is allowed, so that a route added later is
an operator's until someone decides otherwise."""

from __future__ import annotations

from typing import Final

from litestar.exceptions import PermissionDeniedException

# Each of these and everything under it.
TENANT_ROUTES: Final = ("/api/tasks", "/api/workflows")
TENANT_PAGES: Final = ("/api/stats", "/api/failures", "/api/events")


def tenant_may(method: str, path: str, tenant: str) -> bool:
    """Whether a request for ``tenant`` may reach ``path``."""
    path = path.rstrip("/") or "/"
    if path in TENANT_PAGES:
        return True
    if any(path == root or path.startswith(root + "/") for root in TENANT_ROUTES):
        return True
    return method in ("GET", "HEAD") and path == f"/api/tenants/{tenant}"


def check_tenant_route(method: str, path: str, tenant: str) -> None:
    """403 unless a request for ``tenant`` may reach ``path``."""
    if not tenant_may(method, path, tenant):
        raise PermissionDeniedException(
            "a token that acts for a tenant reaches only its tasks, workflows, stats, "
            "failures, events and its own quota; this is for operators"
        )
