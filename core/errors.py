"""The errors polyadapt shows to users.

Every error a user can cause (a bad config, a bad record, a missing file) is raised as a
:class:`PolyadaptError` with a message that names the file, the field or the record and says
what to do. The CLI prints these without a traceback; anything else is a bug.
"""

from __future__ import annotations


class PolyadaptError(Exception):
    """An error caused by input a user can fix; its message says where and how."""


class ConfigError(PolyadaptError):
    """A run config or policy file is invalid."""


class DataError(PolyadaptError):
    """A dataset cannot be loaded or has no usable records."""


class PluginError(PolyadaptError):
    """No plugin can serve a request, or a plugin misbehaved."""


class GovernanceError(PolyadaptError):
    """Data or a request breaks the governance policy (licence, consent, PII, blocked terms)."""
