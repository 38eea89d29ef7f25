"""Reviewers' pages under /review: the two-camera player per attempt and question, flag decisions.

Importing this package registers every page on ``bp``. The marking pages reuse the player
(``player``, ``media`` and the ``review/player.html`` template) for a marker's lots.
"""
from region_server.review import routes  # noqa: F401
from region_server.review.blueprint import bp

__all__ = ["bp"]
