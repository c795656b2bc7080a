"""Noticing that a live-stream client went away while its stream waits for news.

A stream only learns of a closed connection when a write fails, and on TCP the first
write after the peer closed still succeeds (the peer answers it with a reset): with a
heartbeat every 15 s, a vanished client held its stream slot and its thread for up to
30 s. A page reloaded a few times, or a proxy dropping connections, could fill every slot
with streams nobody reads. So each web process keeps one thread blocked in ``epoll`` on
the sockets of its open streams, asking only for "the peer hung up" (``EPOLLRDHUP``): it
costs nothing while nothing closes, and a stream whose client left ends at once.

A client that shuts down only its sending side (a half-close; no browser does this for an
``EventSource``) counts as gone too. Where ``epoll`` or the server's socket is not
available (not Linux, or not gunicorn), streams end on the next failed write as before.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable

_HANGUP = getattr(select, "EPOLLRDHUP", 0) | getattr(select, "EPOLLHUP", 0) | getattr(
    select, "EPOLLERR", 0)


class HangupWatch:
    """The sockets of this process's open streams, and what to do when one's peer leaves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._epoll: select.epoll | None = None
        self._callbacks: dict[int, Callable[[], None]] = {}

    def watch(self, sock: socket.socket, on_hangup: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_hangup`` (once, from the watching thread) when the peer of ``sock``
        hangs up. Returns the function that stops watching, which the stream must call
        before the server may close or reuse the socket."""
        if not _HANGUP or not hasattr(select, "epoll"):
            return _nothing
        fd = sock.fileno()
        with self._lock:
            if self._pid != os.getpid():  # first use in this (possibly forked) process
                self._pid = os.getpid()
                self._epoll = select.epoll()
                self._callbacks = {}
                threading.Thread(target=self._run, args=(self._epoll,), daemon=True,
                                 name="bbweb-stream-hangups").start()
            epoll = self._epoll
            assert epoll is not None
            try:
                epoll.register(fd, _HANGUP)
                self._callbacks[fd] = on_hangup
                registered = True
            except OSError:  # already closed: the peer is gone or the server gave up
                registered = False
        if not registered:
            on_hangup()
            return _nothing

        def forget() -> None:
            with self._lock:
                if self._callbacks.get(fd) is on_hangup:
                    del self._callbacks[fd]
                    try:
                        epoll.unregister(fd)
                    except (OSError, ValueError):
                        pass

        return forget

    def _run(self, epoll: select.epoll) -> None:
        while True:
            try:
                ready = epoll.poll()
            except InterruptedError:
                continue
            except (OSError, ValueError):  # the epoll object was closed
                return
            for fd, _mask in ready:
                with self._lock:
                    callback = self._callbacks.pop(fd, None)
                    if callback is not None:
                        try:
                            epoll.unregister(fd)
                        except (OSError, ValueError):
                            pass
                if callback is not None:
                    callback()


def _nothing() -> None:
    return None


watch = HangupWatch()
"""This process's watch (made afresh in a forked child on first use)."""


__all__ = ["HangupWatch", "watch"]
