"""``buildbot.steps.shell``."""

from bbweb.config.steps import Compile, Configure, ShellCommand, Test

__all__ = ["Compile", "Configure", "ShellCommand", "Test"]
