"""Helpers shared by test modules.

Test modules import from here, never from another test module or from a conftest: a conftest
holds fixtures only, and a helper lives in exactly one place.
"""
