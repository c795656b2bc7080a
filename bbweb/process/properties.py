"""``buildbot.process.properties``."""

from bbweb.config.properties import Interpolate, Property, WithProperties

__all__ = ["Interpolate", "Property", "WithProperties"]
