"""The ``edge`` fixture (config file, database and queue a job sees) for every job test here."""
from tests.edge_server.jobs.test_sync import edge  # noqa: F401
