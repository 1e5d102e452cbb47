"""polyadapt: domain-adapt foundation models with LoRA, one plugin per modality.

Importing this package is cheap: nothing here imports torch, transformers or any
plugin. Heavy modules are imported by the code paths that need them.
"""

__version__ = "0.2.0"

#: The plugin API this core implements. A plugin states the range it supports
#: in its entry module as ``POLYADAPT_API = ">=2,<3"``; see :mod:`polyadapt.plugins`.
#: 2.0: a plugin registers Task objects and the core runs adapt, evaluate and serve
#: (docs/migrating-to-plugin-api-2.md).
PLUGIN_API_VERSION = "2.0"

from polyadapt.errors import PolyadaptError  # noqa: E402  (light, no heavy imports)

__all__ = ["__version__", "PLUGIN_API_VERSION", "PolyadaptError"]
