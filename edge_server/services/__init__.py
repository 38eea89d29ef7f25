"""Business rules of the edge server: plain functions over a session."""
