"""Which addresses a webhook may reach by default, what opens more, and how a
URL is shown in errors and logs."""

from __future__ import annotations

import ipaddress

import pytest

from taskqueue.config import ConfigError, Settings
from taskqueue.destinations import DestinationPolicy, redact_url, refusal_reason, scrub


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),  # cloud metadata
        ("fe80::1", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.5", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd00::1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("fec0::1", "a site-local address"),
        ("::ffff:127.0.0.1", "a loopback address wrapped in IPv6"),
        ("::ffff:169.254.169.254", "a link-local address wrapped in IPv6"),
        ("64:ff9b::a00:1", "a private address wrapped in IPv6"),
        ("2002:7f00:1::", "a loopback address wrapped in IPv6"),
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str, reason: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_the_allow_list_opens_networks_and_host_names() -> None:
    policy = DestinationPolicy.parse(" 10.0.0.0/8, 127.0.0.1 ,hooks.internal,[::1]")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.refusal("anything", loopback) is None
    assert policy.refusal("x", ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal("x", ipaddress.ip_address("::1")) is None
    assert policy.refusal("HOOKS.Internal.", ipaddress.ip_address("192.168.0.7")) is None
    assert policy.refusal("other", ipaddress.ip_address("192.168.0.7")) == "a private address"
    assert DestinationPolicy.parse("").refusal("localhost", loopback) == "a loopback address"


def test_a_malformed_allow_list_stops_the_start() -> None:
    for bad in ("hooks internal", "http://x", "10.0.0.0/99"):
        with pytest.raises(ConfigError, match="TASKQUEUE_WEBHOOK_ALLOW"):
            Settings.from_env({"TASKQUEUE_WEBHOOK_ALLOW": bad})
    assert Settings.from_env({"TASKQUEUE_WEBHOOK_ALLOW": "10.0.0.0/8"}).webhook_allow


def test_urls_are_shown_without_credentials_query_or_fragment() -> None:
    url = "https://user:s3cret@hooks.example.com:8443/in?token=abc123#frag"
    shown = redact_url(url)
    assert shown == "https://***@hooks.example.com:8443/in?***#***"
    assert redact_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    message = f"failed for {url}: token=abc123 rejected"
    cleaned = scrub(message, url)
    assert "s3cret" not in cleaned and "abc123" not in cleaned
