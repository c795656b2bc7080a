"""What HttpStatusPush sends, fed the outbox's events directly: chunks and the halving
under maxHttpRequestSize, a packet too large, filter, blackList, debug, extra form fields,
format='json' with an HMAC signature, and StatusPush's own callback."""

from __future__ import annotations

import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

import pytest

from bbweb.engine.builders import sync_builders
from bbweb.plugins.notifiers.base import DeliveryError
from bbweb.plugins.notifiers.push_packets import encode_packets
from bbweb.status.builder import FAILURE, SUCCESS
from bbweb.status.status_push import HttpStatusPush, StatusPush
from tests.notifiers.conftest import Clock, attempts, build, feed, latest_event
from tests.support.push_receiver import PushReceiver


def push(url: str, **kw: Any) -> HttpStatusPush:
    return HttpStatusPush(url, bufferDelay=0, retryDelay=0.1, **kw)


def names(packets: list[dict[str, Any]]) -> list[str]:
    return [p["event"] for p in packets]


def two_builds(master: Any) -> int:
    """Two builds (8 + 2 + 2 packets); returns the event id before them."""
    before = latest_event(master)
    clock = Clock()
    build(master, "runtests", SUCCESS, clock)
    build(master, "docs", FAILURE, clock)
    return before


def test_chunks_of_chunk_size(mail_master, receiver: PushReceiver):
    before = two_builds(mail_master)
    notifier = push(receiver.url, chunkSize=3)
    feed(notifier, mail_master, before)
    sizes = [len(r["packets"]) for r in receiver.requests()]
    assert sizes and max(sizes) == 3
    packets = receiver.packets()
    assert names(packets).count("buildFinished") == 2
    ids = [p["id"] for p in packets]
    assert ids == sorted(set(ids))
    # one recorded attempt per request, each sent
    rows = attempts(mail_master, "httpstatuspush")
    assert [r.outcome for r in rows] == ["sent"] * len(sizes)
    assert json.loads(rows[0].recipients) == [receiver.url]


def test_halving_under_max_request_size_and_a_packet_too_large(mail_master,
                                                               receiver: PushReceiver):
    before = two_builds(mail_master)
    whole = push(receiver.url)
    feed(whole, mail_master, before)
    sent = receiver.requests()
    assert len(sent) == 1
    everything = sent[0]["packets"]
    receiver.out.unlink()
    # a buildFinished packet (the largest) no longer fits; the others do, in smaller
    # requests than the whole set
    def size(packet: dict[str, Any]) -> int:
        return len(encode_packets([packet], body_format="form", debug=False,
                                  extra_post_params={}))

    limit = min(size(p) for p in everything if p["event"] == "buildFinished")
    assert max(size(p) for p in everything if p["event"] != "buildFinished") < limit
    small = push(receiver.url, maxHttpRequestSize=limit, name="small")
    feed(small, mail_master, before)
    got = receiver.packets()
    assert "buildFinished" not in names(got)
    assert [p["id"] for p in got] == [p["id"] for p in everything
                                      if p["event"] != "buildFinished"]
    assert all(len(r["body"]) < limit for r in receiver.requests())
    assert len(receiver.requests()) > 2
    skipped = [r for r in attempts(mail_master, "small") if r.outcome == "skipped"]
    assert len(skipped) == 2
    finished = [p["id"] for p in everything if p["event"] == "buildFinished"]
    assert skipped[0].answer.startswith(f"packet {finished[0]} was dropped, too large: ")
    assert skipped[0].answer.endswith(f" > {limit}")


def test_filter_blacklist_debug_and_extra_fields(mail_master, receiver: PushReceiver):
    before = two_builds(mail_master)
    notifier = push(receiver.url, filter=False, debug=True,
                    blackList=["stepStarted", "builderChangedState"],
                    extra_post_params={"site": "ci"})
    feed(notifier, mail_master, before)
    (request,) = receiver.requests()
    assert request["form"] == {"site": "ci"}
    text = request["body"]
    assert "%0A++" in text  # indented JSON (newline, two spaces), url-encoded
    packets = request["packets"]
    assert "stepStarted" not in names(packets)
    assert "builderChangedState" not in names(packets)
    step = next(p for p in packets if p["event"] == "stepFinished")["payload"]["step"]
    assert step["results"] == [0, []] and step["hidden"] is False  # nothing filtered
    assert list(packets[0]) == sorted(packets[0])  # sorted keys under debug
    # blacklisted packets keep their places: the others' ids are as without the list
    receiver.out.unlink()
    feed(push(receiver.url, name="all"), mail_master, before)
    kept = {p["id"] for p in receiver.packets()}
    assert {p["id"] for p in packets} < kept


def test_json_format_with_signature(mail_master, receiver: PushReceiver):
    before = two_builds(mail_master)
    notifier = push(receiver.url, format="json", secret="s3cret")
    feed(notifier, mail_master, before)
    (request,) = receiver.requests()
    assert request["headers"]["content-type"] == "application/json"
    body = request["body"].encode()
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert request["headers"]["x-bbweb-signature-256"] == expected
    assert isinstance(json.loads(body), list)
    assert names(request["packets"]).count("buildStarted") == 2
    assert "s3cret" not in repr(notifier)


def test_status_push_calls_the_users_callback(mail_master):
    before = two_builds(mail_master)
    got: list[dict[str, Any]] = []

    def push_cb(sp: StatusPush) -> None:
        got.extend(sp.queue.popChunk(4))
        sp.queueNextServerPush()

    notifier = StatusPush(serverPushCb=push_cb, bufferDelay=0)
    feed(notifier, mail_master, before)
    assert names(got).count("buildFinished") == 2
    assert [p["id"] for p in got] == sorted({p["id"] for p in got})
    assert {r.outcome for r in attempts(mail_master, "statuspush")} == {"sent"}


def test_a_callback_that_takes_nothing_is_retried(mail_master):
    before = two_builds(mail_master)
    calls: list[int] = []

    def lazy(sp: StatusPush) -> None:
        calls.append(sp.queue.nbItems())

    notifier = StatusPush(serverPushCb=lazy, bufferDelay=0, retryDelay=0.5, name="lazy")
    with pytest.raises(DeliveryError, match="took no packets") as info:
        feed(notifier, mail_master, before)
    assert info.value.retry_after == 0.5  # the daemon waits retryDelay, as 0.8 did
    assert calls == [len(calls) and calls[0]]
    (row,) = attempts(mail_master, "lazy")
    assert row.outcome == "failed"

    def gives_back(sp: StatusPush) -> None:
        chunk = sp.queue.popChunk()
        sp.queue.insertBackChunk(chunk[1:])  # "sending" all but the first failed

    taken = StatusPush(serverPushCb=gives_back, bufferDelay=0, name="partial")
    with pytest.raises(DeliveryError, match="took 1 of"):
        feed(taken, mail_master, before)


def test_a_failed_request_before_a_dropped_packet_loses_nothing(mail_master,
                                                                receiver: PushReceiver):
    """A build.started event is two packets: the builder's state, then the build. With
    the build too large to send, a first request fails (503): when the event is handled
    again the state packet still goes out, the build packet stays dropped."""
    before = two_builds(mail_master)
    black = ["requestSubmitted", "buildsetSubmitted"]
    feed(push(receiver.url, blackList=black, name="probe"), mail_master, before)
    everything = receiver.packets()
    receiver.out.unlink()
    size = {p["id"]: len(encode_packets([p], body_format="form", debug=False,
                                        extra_post_params={})) for p in everything}
    limit = min(size[p["id"]] for p in everything if p["event"] == "buildStarted")
    wanted = [p["id"] for p in everything if size[p["id"]] < limit]
    notifier = push(receiver.url, blackList=black, maxHttpRequestSize=limit)
    receiver.answer(503)
    with pytest.raises(DeliveryError):
        feed(notifier, mail_master, before)
    receiver.answer(None)
    feed(notifier, mail_master, before)  # the daemon's retry: the same events again
    got = [p["id"] for p in receiver.packets()]
    assert got == wanted
    assert names(receiver.packets())[0] == "builderChangedState"


def test_a_removed_builder(mail_master, receiver: PushReceiver):
    """0.8 spelt the event ``buildedRemoved``; ``builderRemoved`` in blackList matches it."""
    with mail_master.db.write() as conn:
        sync_builders(conn, mail_master.config)
    before = latest_event(mail_master)
    smaller = SimpleNamespace(builders={n: b for n, b in mail_master.config.builders.items()
                                        if n != "docs"})
    with mail_master.db.write() as conn:
        sync_builders(conn, smaller)
    feed(push(receiver.url), mail_master, before)
    (packet,) = receiver.packets()
    assert (packet["event"], packet["payload"]) == ("buildedRemoved", {"builderName": "docs"})
    receiver.out.unlink()
    feed(push(receiver.url, blackList=["builderRemoved"], name="quiet"), mail_master, before)
    assert receiver.packets() == []
