"""`examkiosk-edge-daemon`: the edge's background loops in one process.

- :mod:`.bridge` — MQTT status and events from the stations into the database;
- :mod:`.announce` — the zeroconf announcement stations discover the edge by;
- :mod:`.scheduler` — automatic lots after the deadline, re-queued sync jobs.

Gunicorn workers never run these; ``__main__`` starts them and stops them on SIGTERM/SIGINT.
"""
