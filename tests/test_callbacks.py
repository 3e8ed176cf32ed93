"""What a callback may be (one rule for every producer) and the Standard
Webhooks signature, checked against an HMAC computed here independently."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from taskqueue.callbacks import (
    CALLBACK_EVENTS,
    CALLBACK_TYPE,
    callback_problem,
    normalised,
    secret_key,
    sign,
)
from taskqueue.client import TaskQueue
from taskqueue.config import ConfigError, Settings
from taskqueue.errors import InvalidTask

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def test_the_signature_is_hmac_sha256_over_id_timestamp_and_body() -> None:
    body = b'{"id":"t1","status":"succeeded"}'
    expected = hmac.new(KEY, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert sign(KEY, "msg_1", 1700000000, body) == "v1," + base64.b64encode(expected).decode()


def test_the_key_is_the_base64_decoded_part_of_the_secret() -> None:
    assert secret_key(SECRET) == KEY


@pytest.mark.parametrize(
    "secret",
    ["0123456789abcdef", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()],
)
def test_a_malformed_secret_is_refused_naming_the_variable(secret: str) -> None:
    with pytest.raises(ValueError, match="TASKQUEUE_CALLBACK_SECRET"):
        secret_key(secret)
    with pytest.raises(ConfigError, match="TASKQUEUE_CALLBACK_SECRET"):
        Settings.from_env({"TASKQUEUE_CALLBACK_SECRET": secret})


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("https://example.com", ""),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://example.com/\n"}, "url"),
        ({"url": "https://example.com:99999/"}, "url"),
        ({"url": "https://example.com/" + "a" * 3000}, "url"),
        ({"url": "https://example.com", "events": []}, "events"),
        ({"url": "https://example.com", "events": ["finished"]}, "events"),
        ({"url": "https://example.com", "events": "failed"}, "events"),
        ({"url": "https://example.com", "secret": "x"}, "secret"),
    ],
)
def test_a_bad_callback_names_its_field(value: object, field: str) -> None:
    problem = callback_problem(value)
    assert problem is not None and problem[0] == field


def test_a_good_callback_is_stored_with_every_event_once_in_order() -> None:
    assert callback_problem({"url": "http://hooks.example.com/in?x=1"}) is None
    assert normalised({"url": "https://h.example"})["events"] == list(CALLBACK_EVENTS)
    picked = {"url": "https://h.example", "events": ["expired", "failed", "failed"]}
    assert callback_problem(picked) is None
    assert normalised(picked)["events"] == ["failed", "expired"]


async def test_producers_cannot_queue_a_delivery_themselves(tq: TaskQueue) -> None:
    # It would have any body they like signed with the callback secret.
    with pytest.raises(InvalidTask) as caught:
        await tq.enqueue(CALLBACK_TYPE, {"url": "https://h.example", "body": {"forged": True}})
    assert caught.value.field == "type"
