"""Bearer-token auth with ``read`` and ``write`` scopes.

Tokens come from TASKQUEUE_API_TOKENS (``token:read+write,other:read``) or a
file of such entries, one per line; a token with no scopes gets both. An
entry may end with a name (``token:read+write:deploy-bot``) that the operator
log records as who acted; without one, the name is ``token-`` and the first
8 hex digits of the token's SHA-256 (not enough to guess the token). As an
alternative, HS256 JWTs signed with TASKQUEUE_JWT_SECRET (32 bytes or more),
carrying ``exp`` and ``scope`` (space-separated) or ``scopes`` (a list), and the
``aud``/``iss`` of TASKQUEUE_JWT_AUDIENCE/TASKQUEUE_JWT_ISSUER when those are
set; any other shape of claim is an invalid token (401). With neither tokens
nor a secret configured auth is off, and the API only binds to 127.0.0.1.

A token may act for one tenant: a fourth field (``token:read+write:name:acme``)
or a JWT's ``tenant`` claim. Such a request reaches only the routes a tenant
may use (taskqueue.http.tenancy; others are 403) and the API scopes its
TaskQueue to that tenant (taskqueue.tenancy)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import jwt
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import ASGIApp, Receive, Scope, Send

from taskqueue.config import ConfigError, Settings
from taskqueue.http.tenancy import check_tenant_route
from taskqueue.limits import MAX_TENANT_LENGTH
from taskqueue.text import escape_controls
from taskqueue.validation import QUEUE_RULE, queue_problem

READ = "read"
WRITE = "write"
ALL_SCOPES = frozenset({READ, WRITE})
LOCAL_ACTOR = "local"  # who acts when auth is off (the API only listens on 127.0.0.1)
ACTOR_STATE_KEY = "taskqueue_actor"  # where the middleware leaves it in scope["state"]
# ...and when the credential that let the request in expires (Unix seconds),
# for responses that outlive the request: an event stream ends then.
EXPIRES_STATE_KEY = "taskqueue_expires"
# ...and the tenant the credential acts for (absent: an operator's).
TENANT_STATE_KEY = "taskqueue_tenant"
# ...and, for a dashboard session, whether it is still signed in (asked again
# by responses that outlive the request).
ALIVE_STATE_KEY = "taskqueue_alive"
MIN_JWT_SECRET_BYTES = 32  # HS256 keys shorter than the hash are guessable offline


class Authenticator:
    def __init__(
        self,
        tokens: dict[bytes, tuple[str, frozenset[str]]],
        jwt_secret: str = "",
        *,
        jwt_audience: str = "",
        jwt_issuer: str = "",
    ) -> None:
        # Keyed by SHA-256 of the token: what is compared (in constant time)
        # has a fixed length, and no token is kept in memory in the clear.
        self._tokens = tokens
        self._tenants: dict[bytes, str] = {}  # digest -> tenant, for tenants' tokens
        if jwt_secret and len(jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ConfigError(
                f"TASKQUEUE_JWT_SECRET: at least {MIN_JWT_SECRET_BYTES} bytes "
                "(for example: openssl rand -hex 32)"
            )
        self._jwt_secret = jwt_secret
        self._jwt_audience = jwt_audience or None
        self._jwt_issuer = jwt_issuer or None
        self._jwt_required = [
            "exp",
            *(["aud"] if jwt_audience else []),
            *(["iss"] if jwt_issuer else []),
        ]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens or self._jwt_secret)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        entries: list[str] = [e for e in settings.api_tokens.split(",") if e.strip()]
        if settings.api_tokens_file:
            try:
                lines = Path(settings.api_tokens_file).read_text().splitlines()
            except OSError as exc:
                raise ConfigError(f"TASKQUEUE_API_TOKENS_FILE: {exc.strerror}") from None
            entries.extend(line for line in lines if line.strip() and not line.startswith("#"))
        parsed = [_parse_entry(e) for e in entries]
        made = cls(
            {digest: entry for digest, entry, _ in parsed},
            settings.jwt_secret,
            jwt_audience=settings.jwt_audience,
            jwt_issuer=settings.jwt_issuer,
        )
        made._tenants = {digest: tenant for digest, _, tenant in parsed if tenant}
        return made

    def tenant_by_digest(self, digest: bytes) -> str | None:
        """The tenant of the configured token with this SHA-256 (None: an operator's)."""
        return self._tenants.get(digest)

    def tenant_of(self, presented: str) -> str | None:
        """The tenant a valid token acts for: its entry's fourth field or its
        JWT's ``tenant`` claim (None: an operator's token, or not valid)."""
        digest = hashlib.sha256(presented.encode()).digest()
        if digest in self._tenants:
            return self._tenants[digest]
        if self._jwt_secret and presented.count(".") == 2 and digest not in self._tokens:
            found = self._jwt_claims(presented)
            tenant = None if found is None else found.get("tenant")
            return tenant if isinstance(tenant, str) else None
        return None

    def digests(self) -> list[bytes]:
        """SHA-256 of every configured token (the dashboard derives its
        session key from them)."""
        return list(self._tokens)

    def by_digest(self, digest: bytes) -> tuple[str, frozenset[str]] | None:
        """(name, scopes) of the configured token with this SHA-256, else None."""
        found: tuple[str, frozenset[str]] | None = None
        for known, entry in self._tokens.items():
            if hmac.compare_digest(known, digest):
                found = entry
        return found

    def scopes_of(self, presented: str) -> frozenset[str] | None:
        found = self.identify(presented)
        return None if found is None else found[1]

    def identify(self, presented: str) -> tuple[str, frozenset[str]] | None:
        """(name, scopes) of a valid token, else None."""
        found = self.identify_until(presented)
        return None if found is None else (found[0], found[1])

    def identify_until(self, presented: str) -> tuple[str, frozenset[str], float | None] | None:
        """(name, scopes, expiry) of a valid token, else None; the expiry is
        a JWT's ``exp`` (Unix seconds), None for a configured token."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: tuple[str, frozenset[str]] | None = None
        for known, entry in self._tokens.items():
            if hmac.compare_digest(known, digest):
                found = entry
        if found is not None:
            return found[0], found[1], None
        if self._jwt_secret and presented.count(".") == 2:
            return self._jwt_identity(presented)
        return None

    def _jwt_claims(self, presented: str) -> dict[str, Any] | None:
        """A valid JWT's claims, else None. A ``tenant`` claim that is no
        tenant's name makes the token invalid: it cannot be scoped."""
        try:
            claims: dict[str, Any] = jwt.decode(
                presented,
                self._jwt_secret,
                algorithms=["HS256"],
                audience=self._jwt_audience,
                issuer=self._jwt_issuer,
                options={"require": self._jwt_required},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        if "tenant" in claims and queue_problem(claims["tenant"], max_length=MAX_TENANT_LENGTH):
            return None
        return claims

    def _jwt_identity(self, presented: str) -> tuple[str, frozenset[str], float] | None:
        """The token's subject and scopes; None for a token that is invalid,
        expired, for another audience or issuer, or whose claims have the
        wrong shape."""
        claims = self._jwt_claims(presented)
        if claims is None:
            return None
        # PyJWT takes "exp": "9999999999" as a number; a claim of the wrong
        # type is a token this API did not mean to accept.
        if any(
            name in claims and (type(claims[name]) not in (int, float))
            for name in ("exp", "nbf", "iat")
        ) or ("scope" in claims and type(claims["scope"]) is not str):
            return None
        raw = claims.get("scopes", claims.get("scope", ""))
        if isinstance(raw, str):
            scopes = raw.split()
        elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
            scopes = raw
        else:
            return None
        subject = claims.get("sub")
        # The name is stored (operator log) and printed: no control characters.
        name = (
            f"jwt:{escape_controls(subject[:100])}"
            if isinstance(subject, str) and subject
            else "jwt"
        )
        return name, frozenset(scopes) & ALL_SCOPES, float(claims["exp"])

    def check(self, authorization: str, scope: str) -> str:
        """The name of who presented ``authorization``; raise 401 without a
        valid token, 403 without ``scope``."""
        return self.check_until(authorization, scope)[0]

    def check_until(self, authorization: str, scope: str) -> tuple[str, float | None]:
        """``check``, and when the token expires (None: it does not)."""
        if not self.enabled:
            return LOCAL_ACTOR, None
        kind, _, presented = authorization.partition(" ")
        if kind.lower() != "bearer" or not presented.strip():
            raise NotAuthorizedException("missing bearer token (Authorization: Bearer <token>)")
        found = self.identify_until(presented.strip())
        if found is None:
            raise NotAuthorizedException("invalid or expired token")
        name, scopes, expires = found
        if scope not in scopes:
            raise PermissionDeniedException(f"this token lacks the '{scope}' scope")
        return name, expires


# For a request without an Authorization header: the actor of the
# dashboard session it carries and when the session ends (checking scope and
# CSRF token, raising 403), or None when it carries none (or a signed-out one).
# The fourth element is the session's tenant (None: an operator's).
SessionActor = Callable[
    [Scope, str],
    Awaitable[tuple[str, float | None, Callable[[], Awaitable[bool]], str | None] | None],
]


def auth_middleware(
    authenticator: Authenticator, sessions: SessionActor | None = None
) -> Callable[[ASGIApp], ASGIApp]:
    """Everything under /api/ needs a token: ``read`` to GET, ``write`` to POST.
    /health, /ready and /schema stay open. One check per request in
    middleware, rather than a per-route guard (which Litestar invokes on a
    copy of the route handler, every request). Without an Authorization
    header, a dashboard session cookie may stand in for the token."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if authenticator.enabled and scope["type"] == ScopeType.HTTP:
                path: str = scope["path"]
                if path.startswith("/api/"):
                    header = b""
                    for name, value in scope["headers"]:
                        if name == b"authorization":
                            header = value
                            break
                    method = scope.get("method", "GET")
                    needed = READ if method in ("GET", "HEAD") else WRITE
                    state = scope.setdefault("state", {})
                    session = None
                    if not header and sessions is not None:
                        session = await sessions(scope, needed)
                    if session is None:
                        authorization = header.decode("latin-1")
                        found = authenticator.check_until(authorization, needed)
                        state[ACTOR_STATE_KEY], state[EXPIRES_STATE_KEY] = found
                        tenant = authenticator.tenant_of(authorization.partition(" ")[2].strip())
                    else:
                        actor, expires, state[ALIVE_STATE_KEY], tenant = session
                        state[ACTOR_STATE_KEY], state[EXPIRES_STATE_KEY] = actor, expires
                    if tenant is not None:
                        check_tenant_route(method, path, tenant)
                        state[TENANT_STATE_KEY] = tenant
            await app(scope, receive, send)

        return middleware

    return wrap


def _parse_entry(entry: str) -> tuple[bytes, tuple[str, frozenset[str]], str]:
    """(digest, (name, scopes), tenant or '') of one ``token:scopes:name:tenant``."""
    token, _, rest = entry.strip().partition(":")
    scope_text, _, rest = rest.partition(":")
    name, _, tenant = rest.partition(":")
    tenant = tenant.strip()
    if tenant and queue_problem(tenant, max_length=MAX_TENANT_LENGTH):
        raise ConfigError(f"TASKQUEUE_API_TOKENS: a token's tenant is {QUEUE_RULE}")
    if len(token) < 16:
        raise ConfigError("TASKQUEUE_API_TOKENS: each token needs at least 16 characters")
    scopes = frozenset(s for s in scope_text.split("+") if s) or ALL_SCOPES
    unknown = scopes - ALL_SCOPES
    if unknown:
        raise ConfigError(f"TASKQUEUE_API_TOKENS: unknown scope(s) {', '.join(sorted(unknown))}")
    digest = hashlib.sha256(token.encode()).digest()
    name = name.strip()
    if name and (len(name) > 100 or not name.isprintable()):
        raise ConfigError("TASKQUEUE_API_TOKENS: a token's name is printable, 1-100 characters")
    return digest, (name or f"token-{digest.hex()[:8]}", scopes), tenant


def actor_of(request: Request[Any, Any, Any]) -> str:
    """Who made this request, as the auth middleware found (``local``
    without auth)."""
    actor = request.scope.get("state", {}).get(ACTOR_STATE_KEY)
    return actor if isinstance(actor, str) else LOCAL_ACTOR


def tenant_of(request: Request[Any, Any, Any]) -> str | None:
    """The tenant this request acts for, as the auth middleware found (None:
    an operator, or auth is off)."""
    tenant = request.scope.get("state", {}).get(TENANT_STATE_KEY)
    return tenant if isinstance(tenant, str) else None


def expires_of(request: Request[Any, Any, Any]) -> float | None:
    """When the credential of this request expires (Unix seconds), as the
    auth middleware found; None when it does not (or auth is off)."""
    expires = request.scope.get("state", {}).get(EXPIRES_STATE_KEY)
    return expires if isinstance(expires, float) else None


def session_alive(request: Request[Any, Any, Any]) -> Callable[[], Awaitable[bool]] | None:
    """For a request let in by a dashboard session: whether that session is
    still signed in; None for any other request."""
    alive = request.scope.get("state", {}).get(ALIVE_STATE_KEY)
    return alive if callable(alive) else None


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def check_binding(settings: Settings, authenticator: Authenticator) -> None:
    """Without tokens, refuse to listen anywhere but loopback."""
    if not authenticator.enabled and not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to bind {settings.host} without auth: set TASKQUEUE_API_TOKENS "
            "(or TASKQUEUE_API_TOKENS_FILE / TASKQUEUE_JWT_SECRET), or bind 127.0.0.1"
        )


def scopes_text(scopes: Iterable[str]) -> str:
    return "+".join(sorted(scopes))
