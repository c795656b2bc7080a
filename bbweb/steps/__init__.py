"""Buildbot's ``buildbot.steps`` paths, for master.cfg files migrated by prefix."""
