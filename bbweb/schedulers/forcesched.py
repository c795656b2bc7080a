"""``buildbot.schedulers.forcesched``."""

from bbweb.mastercfg.forcefields import (
    AnyPropertyParameter,
    BaseParameter,
    BooleanParameter,
    ChoiceStringParameter,
    CodebaseParameter,
    FixedParameter,
    IntParameter,
    NestedParameter,
    StringParameter,
    TextParameter,
    UserNameParameter,
    ValidationError,
)
from bbweb.mastercfg.schedulers import ForceScheduler

__all__ = ["AnyPropertyParameter", "BaseParameter", "BooleanParameter",
           "ChoiceStringParameter", "CodebaseParameter", "FixedParameter", "ForceScheduler",
           "IntParameter", "NestedParameter", "StringParameter", "TextParameter",
           "UserNameParameter", "ValidationError"]
