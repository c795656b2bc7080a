"""Buildbot's ``buildbot.schedulers`` paths, for master.cfg files migrated by prefix."""
