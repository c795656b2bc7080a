"""Buildbot's ``buildbot.changes`` paths, for master.cfg files migrated by prefix."""
