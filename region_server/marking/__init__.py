"""Markers' pages and the regional admin's marking tools under /marking.

Markers see only the sittings assigned to them, by lot (no names, ticket numbers or ID numbers),
play a lot in the review player and score it per question. The regional admin assigns markers,
sets each sitting's scale, exports the markers' package and the results, and reads the audit log.
Importing this package registers every page on ``bp``.
"""
from region_server.marking import admin, routes  # noqa: F401
from region_server.marking.blueprint import bp

__all__ = ["bp"]
