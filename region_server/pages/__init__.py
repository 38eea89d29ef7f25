"""The regional pages under /region: centres, sittings, attempts, problems, CSV exports.
Importing this package registers every page on ``bp``."""
from region_server.pages import labels, routes  # noqa: F401  (template globals; the pages)
from region_server.pages.blueprint import bp

__all__ = ["bp"]
