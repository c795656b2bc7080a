"""Buildbot's ``buildbot.process`` paths, for master.cfg files migrated by prefix."""
