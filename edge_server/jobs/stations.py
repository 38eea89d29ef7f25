"""The MQTT cut-off of a revoked station, run by the worker (``services.stations.revoke_station`` queues it)."""
from __future__ import annotations

from dataclasses import asdict

from edge_server.jobs.context import app_context
from edge_server.services import stations


def cut_off(station_id: str, by: str) -> dict:
    """Safe to run twice: a second run finds the broker user gone and says so."""
    with app_context() as (_app, db, settings):
        return asdict(stations.cut_off(db.session, settings, station_id, by=by))
