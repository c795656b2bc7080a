"""``buildbot.steps.shell``."""

from bbweb.mastercfg.steps import Compile, Configure, ShellCommand, Test

__all__ = ["Compile", "Configure", "ShellCommand", "Test"]
