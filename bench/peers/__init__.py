"""Servers under test for the DNS benchmark: the process wrapper and one factory per resolver."""
