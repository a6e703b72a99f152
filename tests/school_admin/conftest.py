"""Fixtures: one real resolver per test module serving the school (school_support.py, where
the browser tests find them too)."""

from school_support import school_fixture, school_server  # noqa: F401
