"""The regional server: indexes and verifies every centre's recordings from central storage."""
from region_server.app import create_app

__all__ = ["create_app"]
