"""Everything a master.cfg needs: ``from bbweb.config import *`` gives Buildbot's names.

Like Buildbot 0.8's module paths (``bbweb.status.html``, ``bbweb.steps.shell``, …) this
module only gathers names from where they live; nothing in bbweb imports it.
"""

from bbweb.auth import Authz, BasicAuth, HTPasswdAprAuth, HTPasswdAuth, UsersAuth
from bbweb.changes.gitpoller import GitPoller
from bbweb.changes.svnpoller import SVNPoller
from bbweb.mastercfg.builders import BuilderConfig, BuildSlave
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.mastercfg.forcefields import (
    AnyPropertyParameter,
    BooleanParameter,
    ChoiceStringParameter,
    CodebaseParameter,
    FixedParameter,
    IntParameter,
    StringParameter,
    TextParameter,
    UserNameParameter,
)
from bbweb.mastercfg.master import MasterConfig, load_master_config
from bbweb.mastercfg.properties import Interpolate, Property, WithProperties
from bbweb.mastercfg.schedulers import (
    AnyBranchScheduler,
    ChangeFilter,
    ForceScheduler,
    Nightly,
    Periodic,
    Scheduler,
    SingleBranchScheduler,
)
from bbweb.mastercfg.steps import (
    BuildFactory,
    BuildStep,
    Compile,
    Configure,
    Git,
    ShellCommand,
    Test,
)
from bbweb.mastercfg.webstatus import WebStatus
from bbweb.values.results import (
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    Results,
)

__all__ = [
    "AnyBranchScheduler", "BuildFactory", "BuildSlave", "BuildStep", "BuilderConfig",
    "ChangeFilter", "Compile", "ConfigErrors", "Configure", "EXCEPTION", "FAILURE",
    "ForceScheduler", "Git", "Interpolate", "MasterConfig", "Nightly", "Periodic", "Property",
    "RETRY",
    "Results", "SKIPPED", "SUCCESS", "Scheduler", "ShellCommand", "SingleBranchScheduler",
    "Test", "WARNINGS", "WebStatus", "WithProperties", "load_master_config",
    "GitPoller", "SVNPoller",
    "Authz", "BasicAuth", "HTPasswdAuth", "HTPasswdAprAuth", "UsersAuth",
    # ForceScheduler fields (also in bbweb.schedulers.forcesched, 0.8's module)
    "AnyPropertyParameter", "BooleanParameter", "ChoiceStringParameter", "CodebaseParameter",
    "FixedParameter", "IntParameter", "StringParameter", "TextParameter", "UserNameParameter",
]
