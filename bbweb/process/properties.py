"""``buildbot.process.properties``."""

from bbweb.mastercfg.properties import Interpolate, Property, WithProperties

__all__ = ["Interpolate", "Property", "WithProperties"]
