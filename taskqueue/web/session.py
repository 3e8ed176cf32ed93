"""The dashboard's sign-in session: a signed cookie, and the CSRF token that
goes with it.

Signing in with an API token sets ``taskqueue_session``: HttpOnly (page
scripts cannot read it), SameSite=Strict (other sites' requests never carry
it), Secure over HTTPS, expiring after TASKQUEUE_SESSION_HOURS. Its value is
``<payload>.<signature>``, an HMAC-SHA256 over the payload, which holds:

- what identifies the token: the SHA-256 of a configured token (never the
  token itself), or a JWT as presented (it carries its own expiry). The
  token's name and scopes are looked up afresh on every request, so a token
  removed from the configuration ends its sessions at the next restart, and a
  cookie never grants more than its token does;
- a random CSRF token, which the pages carry in a ``<meta>`` tag and scripts
  send back as ``X-CSRF-Token`` with every state-changing request: another
  site can make a browser send the cookie, but cannot read the page;
- when the session ends.

The signing key is TASKQUEUE_SESSION_SECRET when set; otherwise it is
derived from the auth configuration (every token's digest and the JWT
secret), so every API process with the same configuration accepts the same
sessions, they survive restarts, and changing the tokens ends them all.

Signing out ends the session everywhere, not only in the browser that had
it: the session's id (the SHA-256 of its CSRF token) goes to
taskqueue.revoked_sessions until the cookie would have expired, and a copy of
the cookie is refused from then on: at once by the API process that signed
it out, within REVOCATION_CHECK_SECONDS by the others (each asks the
database at most that often per session, by primary key)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from litestar.exceptions import PermissionDeniedException
from litestar.types import Scope

from taskqueue import db, store
from taskqueue.config import ConfigError, Settings
from taskqueue.http.auth import LOCAL_ACTOR, WRITE, Authenticator

COOKIE_NAME = "taskqueue_session"
CSRF_HEADER = b"x-csrf-token"
MIN_SECRET_BYTES = 32
REVOCATION_CHECK_SECONDS = 2.0
_KEY_LABEL = b"taskqueue dashboard session v1"


class SessionData(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    digest: str | None = None  # hex SHA-256 of a configured token
    jwt: str | None = None  # or the JWT that was presented
    csrf: str
    expires: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at the dashboard, and whether they may act."""

    name: str
    scopes: frozenset[str]
    csrf: str  # empty when auth is off: no session, no cookie to forge with
    expires: float | None = None  # when the session (or its JWT) ends, Unix seconds
    tenant: str | None = None  # the tenant its token acts for (None: an operator)

    @property
    def session_id(self) -> bytes:
        """What a sign-out records: the digest of the session's random CSRF token."""
        return hashlib.sha256(self.csrf.encode()).digest()

    @property
    def can_write(self) -> bool:
        return WRITE in self.scopes


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(SessionData).decode


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Revocations:
    """Which sessions were signed out. A revoked id is remembered until its
    cookie's expiry; a live one is asked of the database again after
    REVOCATION_CHECK_SECONDS. Without a database (``bind`` not called yet)
    only this process's own sign-outs count."""

    def __init__(self) -> None:
        self._runner: db.Runner | None = None
        self._revoked: dict[bytes, float] = {}  # session id -> its expiry (Unix seconds)
        self._live: dict[bytes, float] = {}  # session id -> when last found live (monotonic)

    def bind(self, runner: db.Runner) -> None:
        self._runner = runner

    async def revoked(self, viewer: Viewer) -> bool:
        session = viewer.session_id
        if session in self._revoked:
            return True
        now = time.monotonic()
        checked = self._live.get(session)
        if self._runner is None or (
            checked is not None and now - checked < REVOCATION_CHECK_SECONDS
        ):
            return False
        if await self._runner.run(store.session_revoked, session):
            self._remember(session, viewer.expires or time.time())
            return True
        if len(self._live) >= 10_000:  # many sessions at once: start the memo over
            self._live.clear()
        self._live[session] = now
        return False

    async def revoke(self, viewer: Viewer) -> None:
        expires = viewer.expires or time.time()
        self._remember(viewer.session_id, expires)
        if self._runner is not None:
            until = datetime.fromtimestamp(expires, UTC)
            await self._runner.run(store.revoke_session, viewer.session_id, until)

    def _remember(self, session: bytes, expires: float) -> None:
        now = time.time()
        for known in [s for s, until in self._revoked.items() if until <= now]:
            del self._revoked[known]
        self._revoked[session] = expires
        self._live.pop(session, None)


class Sessions:
    """Issues and checks session cookies for one authenticator."""

    def __init__(
        self, authenticator: Authenticator, key: bytes, *, lifetime_seconds: float
    ) -> None:
        self.authenticator = authenticator
        self._key = key
        self.lifetime_seconds = int(lifetime_seconds)
        self.revocations = Revocations()

    @classmethod
    def from_settings(cls, settings: Settings, authenticator: Authenticator) -> Sessions:
        secret = settings.session_secret
        if secret and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"TASKQUEUE_SESSION_SECRET: at least {MIN_SECRET_BYTES} bytes "
                "(for example: openssl rand -hex 32)"
            )
        if secret:
            key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        else:
            key = derived_key(authenticator.digests(), settings.jwt_secret)
        return cls(authenticator, key, lifetime_seconds=settings.session_hours * 3600)

    @property
    def enabled(self) -> bool:
        return self.authenticator.enabled

    def open_viewer(self) -> Viewer:
        """The viewer when auth is off: anyone who reaches 127.0.0.1."""
        return Viewer(name=LOCAL_ACTOR, scopes=frozenset({"read", WRITE}), csrf="")

    def sign_in(self, token: str, *, now: float | None = None) -> tuple[str, Viewer] | None:
        """A cookie value and its viewer for a valid ``token``; else None."""
        token = token.strip()
        found = self.authenticator.identify_until(token) if token else None
        if found is None:
            return None
        name, scopes, token_expires = found
        digest = hashlib.sha256(token.encode()).hexdigest()
        configured = self.authenticator.by_digest(bytes.fromhex(digest)) is not None
        data = SessionData(
            digest=digest if configured else None,
            jwt=None if configured else token,
            csrf=secrets.token_urlsafe(32),
            expires=int((time.time() if now is None else now) + self.lifetime_seconds),
        )
        payload = _b64(_encode(data))
        expires = float(min(data.expires, token_expires or data.expires))
        tenant = self.authenticator.tenant_of(token)
        viewer = Viewer(name, scopes, data.csrf, expires, tenant)
        return f"{payload}.{self._sign(payload)}", viewer

    def viewer(self, cookie: str, *, now: float | None = None) -> Viewer | None:
        """The viewer a cookie value stands for, or None when it is forged,
        expired, malformed or its token is no longer accepted."""
        payload, dot, signature = cookie.partition(".")
        if not dot or len(cookie) > 8192:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = _decode(_unb64(payload))
        except (msgspec.DecodeError, binascii.Error, ValueError):
            return None
        if data.expires <= (time.time() if now is None else now):
            return None
        found: tuple[str, frozenset[str], float | None] | None = None
        tenant: str | None = None
        if data.digest is not None:
            try:
                digest = bytes.fromhex(data.digest)
            except ValueError:
                return None
            configured = self.authenticator.by_digest(digest)
            found = None if configured is None else (*configured, None)
            tenant = self.authenticator.tenant_by_digest(digest)
        elif data.jwt is not None:
            found = self.authenticator.identify_until(data.jwt)
            tenant = self.authenticator.tenant_of(data.jwt)
        if found is None:
            return None
        expires = min(float(data.expires), found[2] or float(data.expires))
        return Viewer(found[0], found[1], data.csrf, expires, tenant)

    def viewer_from_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> Viewer | None:
        """The session viewer of an ASGI request, if it has a valid cookie
        (signed out or not: ``current`` asks that too)."""
        cookie = cookie_value(headers, COOKIE_NAME)
        return None if cookie is None else self.viewer(cookie)

    async def current(self, headers: Iterable[tuple[bytes, bytes]]) -> Viewer | None:
        """The viewer of a request's valid session cookie that was not signed out."""
        viewer = self.viewer_from_headers(headers)
        if viewer is None or await self.revocations.revoked(viewer):
            return None
        return viewer

    async def sign_out(self, viewer: Viewer) -> None:
        """End ``viewer``'s session for every copy of its cookie."""
        await self.revocations.revoke(viewer)

    async def api_actor(
        self, scope: Scope, needed: str
    ) -> tuple[str, float | None, Callable[[], Awaitable[bool]], str | None] | None:
        """For the API's auth middleware: the name behind a request's session
        cookie, when the session ends, how to ask whether it is still
        signed in and its tenant, or None without one. A session
        without ``needed`` scope, or a state-changing request without the
        session's CSRF token, is refused (403) whatever page it came from."""
        viewer = await self.current(scope["headers"])
        if viewer is None:
            return None
        if needed not in viewer.scopes:
            raise PermissionDeniedException(f"this session's token lacks the '{needed}' scope")
        if scope.get("method", "GET") not in ("GET", "HEAD") and not csrf_matches(
            viewer, scope["headers"]
        ):
            raise PermissionDeniedException(
                "missing or wrong CSRF token (X-CSRF-Token): reload the page and try again"
            )

        async def alive() -> bool:
            return not await self.revocations.revoked(viewer)

        return viewer.name, viewer.expires, alive, viewer.tenant

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def derived_key(digests: Iterable[bytes], jwt_secret: str) -> bytes:
    """A signing key only someone holding every configured secret could
    compute; the same in every process configured alike."""
    material = hashlib.sha256()
    for digest in sorted(digests):
        material.update(digest)
    material.update(b"\0jwt\0" + jwt_secret.encode())
    return hmac.new(material.digest(), _KEY_LABEL, hashlib.sha256).digest()


def csrf_matches(viewer: Viewer, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    sent = b""
    for name, value in headers:
        if name == CSRF_HEADER:
            sent = value
            break
    return bool(viewer.csrf) and hmac.compare_digest(sent, viewer.csrf.encode())


def cookie_value(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """One cookie's value from the Cookie header(s), without parsing the rest."""
    prefix = f"{name}="
    for header, value in headers:
        if header != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix) :]
    return None
