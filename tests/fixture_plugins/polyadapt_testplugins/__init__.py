"""Test plugins for polyadapt's plugin-manager tests."""
