"""Fixtures for the poller tests: the daemon-in-a-thread factory of tests/daemon."""

from tests.daemon.conftest import daemons  # noqa: F401 (a fixture)
