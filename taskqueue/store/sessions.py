"""Signed-out dashboard sessions (revoke_session.sql, session_revoked.sql)."""

from __future__ import annotations

from datetime import datetime

from taskqueue.store._sql import Executor, query


async def revoke_session(conn: Executor, session_id: bytes, expires_at: datetime) -> None:
    await conn.execute(query("revoke_session"), session_id, expires_at)


async def session_revoked(conn: Executor, session_id: bytes) -> bool:
    return bool(await conn.fetchval(query("session_revoked"), session_id))
