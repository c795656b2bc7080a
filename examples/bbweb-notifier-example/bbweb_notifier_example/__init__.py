"""``WebhookNotifier``: a JSON summary of each finished build, POSTed to a URL.

A worked example of a third-party bbweb notifier (docs/plugins.md, "Notifiers"). The
master daemon hands it the ``build.finished`` events in order; it decides what to send
from the event and the status database (``notifications_for``) and sends it
(``deliver``). bbweb records every attempt on /notifications, retries while the receiver
is down, and never sends a notification it already recorded as sent; the
``Idempotency-Key`` header lets the receiver drop the one repeat a crash between "sent"
and "recorded" can cause.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import requests

from bbweb.mastercfg.errors import config_error
from bbweb.plugins.notifiers.base import DeliveryError, Notification, Notifier, Rejected
from bbweb.status.results import SUCCESS, WARNINGS, Results

__all__ = ["WebhookNotifier", "summary"]


def summary(build: Any, results: int | None, master_status: Any) -> dict[str, Any]:
    """What is POSTed about one build (any object with BuildStatus's methods)."""
    return {
        "builder": build.getBuilder().getName(),
        "number": build.getNumber(),
        "result": Results[results] if results is not None else None,
        "text": build.getText(),
        "blame": build.getResponsibleUsers(),
        "url": master_status.getURLForThing(build),
    }


class WebhookNotifier(Notifier):
    """``[notifiers] webhook = { url = "https://chat.example.org/hooks/ci" }``"""

    plugin_name = "webhook"
    event_kinds = frozenset({"build.finished"})

    def __init__(self, url: str, builders: Sequence[str] | None = None,
                 only_failures: bool = False, timeout: float = 10.0,
                 name: str | None = None) -> None:
        super().__init__(name)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            config_error(f"WebhookNotifier: url={url!r} must be an http:// or https:// URL")
        if builders is not None and not all(isinstance(b, str) for b in builders):
            config_error("WebhookNotifier: builders must be a list of builder names")
        self.url = url
        self.builders = None if builders is None else list(builders)
        self.only_failures = bool(only_failures)
        self.timeout = float(timeout)

    def notifications_for(self, event: dict[str, Any]) -> list[Notification]:
        payload = event["payload"]
        if self.builders is not None and payload["builder"] not in self.builders:
            return []
        results = payload.get("results")
        if self.only_failures and results in (SUCCESS, WARNINGS):
            return []
        build = self.master_status.getBuildById(int(payload["buildid"]))
        if build is None:
            return []
        data = summary(build, results, self.master_status)
        key = hashlib.sha256(f"{self.config.buildbotURL}|{self.name}|{event['id']}"
                             .encode()).hexdigest()[:32]
        return [Notification(key=key, what=f"{data['builder']} #{data['number']} "
                                           f"({data['result']})",
                             recipients=[self.url], payload=data,
                             builder=data["builder"], build_number=data["number"])]

    def deliver(self, notification: Notification) -> str:
        try:
            resp = requests.post(self.url, json=notification.payload, timeout=self.timeout,
                                 headers={"Idempotency-Key": notification.key})
        except requests.RequestException as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        answer = f"{resp.status_code} {resp.reason}"
        if resp.status_code >= 500 or resp.status_code == 429:
            raise DeliveryError(answer)  # the receiver is in trouble: try again later
        if resp.status_code >= 400:
            raise Rejected(answer)  # it will never take this one
        return answer
