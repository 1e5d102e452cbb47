"""polyadapt: domain-adapt foundation models with LoRA, one plugin per modality.

Importing this package is cheap: nothing here imports torch, transformers or any
plugin. Heavy modules are imported by the code paths that need them.
"""

__version__ = "0.1.0"

#: The plugin API this core implements. A plugin states the range it supports
#: in its entry module as ``POLYADAPT_API = ">=1,<2"``; see :mod:`polyadapt.plugins`.
PLUGIN_API_VERSION = "1.0"

from polyadapt.errors import PolyadaptError  # noqa: E402  (light, no heavy imports)

__all__ = ["__version__", "PLUGIN_API_VERSION", "PolyadaptError"]
