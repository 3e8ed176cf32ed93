"""Headers every dashboard response carries: a Content-Security-Policy that
allows the page's own scripts, styles and requests and nothing else (no
inline script, no inline style, no other origin, no framing), and the usual
companions."""

from __future__ import annotations

from litestar import Response

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",  # pages hold live data and a CSRF token
}


def html_response(html: str, status_code: int = 200) -> Response[str]:
    return Response(html, status_code=status_code, media_type="text/html", headers=SECURITY_HEADERS)
