"""``polyadapt serve``: an OpenAI-compatible HTTP server over the plugins' servables.

:mod:`polyadapt.serving.app` builds the FastAPI application; it is imported by the
``serve`` command only, so that ``polyadapt --help`` never pays for FastAPI.
"""
