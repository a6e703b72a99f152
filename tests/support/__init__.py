"""Test support: the local upstream authority and helpers shared by the DNS tests."""
