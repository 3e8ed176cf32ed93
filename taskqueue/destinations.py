"""Where a ``webhook`` task may send its request, and how its URL is shown.

By default only public internet addresses: loopback, private, link-local
(cloud metadata services live there), shared (carrier-grade NAT), multicast,
reserved and unspecified addresses are refused, IPv4 and IPv6 alike,
including IPv4 addresses wrapped in IPv6 (mapped, 6to4, NAT64). Decimal and
short forms such as ``2130706433`` or ``127.1`` need no rule of their own:
the check is made on the address a name resolves to, which is the address
then connected to. ``TASKQUEUE_WEBHOOK_ALLOW`` opens CIDRs and host names an
operator wants reachable.

No I/O here, so that settings can be checked at start without the HTTP stack."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


def refusal_reason(address: Address) -> str | None:
    """Why an address is not a public destination ("a loopback address"), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return None if inner is None else f"{inner} wrapped in IPv6"
        if address.is_site_local:
            return "a site-local address"
    for check, reason in (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
    ):
        if check:
            return reason
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    """Public addresses, plus ``networks`` and ``hosts`` an operator opened."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> DestinationPolicy:
        """``10.0.0.0/8,192.168.1.5,hooks.internal`` (TASKQUEUE_WEBHOOK_ALLOW);
        raises ValueError naming an entry that is neither a CIDR nor a host name."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host = _normal_host(entry)
            if not host or not all(part and _is_label(part) for part in host.split(".")):
                raise ValueError(
                    f"TASKQUEUE_WEBHOOK_ALLOW: {entry!r} is neither a CIDR nor a host name"
                )
            hosts.add(host)
        return cls(tuple(networks), frozenset(hosts))

    def refusal(self, host: str, address: Address) -> str | None:
        """Why ``host``, resolved to ``address``, may not be connected to, or None."""
        if _normal_host(host) in self.hosts:
            return None
        if any(address in network for network in self.networks):
            return None
        return refusal_reason(address)


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _is_label(part: str) -> bool:
    return len(part) <= 63 and all(c.isalnum() or c in "-_" for c in part) and part.isascii()


def redact_url(url: str) -> str:
    """The URL without what may be a secret: credentials, query and fragment
    are replaced by ``***`` (``https://***@hooks.example.com/in?***``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unparseable URL)"
    shown = f"{parts.scheme}://"
    if parts.username is not None or parts.password is not None:
        shown += "***@"
    shown += f"[{host}]" if ":" in host else host
    if port is not None:
        shown += f":{port}"
    shown += parts.path
    if parts.query:
        shown += "?***"
    if parts.fragment:
        shown += "#***"
    return shown


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) without the secret parts of ``url``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, "***")
    secrets = [url, parts.query, parts.fragment, parts.netloc.rpartition("@")[0]]
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
