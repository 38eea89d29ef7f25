"""The push job: a staff action's command sent to its stations over MQTT, outside the request.

Queued by ``work_queue.enqueue_push``; its result (delivered or not) is what the staff pages show,
and the audit log keeps it (``command_pushed``). A push is a courtesy that makes a station react
within a second: every decision is in the database too and the stations ask the API for it, so a
push that does not get through is not retried.
"""
from __future__ import annotations

import logging

from edge_server.jobs.context import app_context
from edge_server.services import audit
from edge_server.services.push import PushFailed, publish
from examkiosk_wire import topics

logger = logging.getLogger(__name__)


def deliver(about: str, station_ids: list[str], command_json: str) -> bool:
    """Publish the command to each station (one connection, every PUBACK awaited); True if the broker took them all."""
    command = topics.StationCommand.from_json(command_json)
    with app_context() as (_app, db, settings):
        problem = ""
        try:
            publish(settings, [(topics.cmd_topic(settings.centre, sid), command_json) for sid in station_ids])
        except PushFailed as exc:
            problem = str(exc)
            logger.warning("could not push %s (%s) to %s over MQTT (%s); they will ask the API", command.kind,
                           about, ", ".join(station_ids), exc)
        audit.append(db.session, kind="command_pushed", station_id=station_ids[0] if len(station_ids) == 1 else None,
                     attempt_id=command.attempt, source="job",
                     payload={"about": about, "kind": command.kind, "stations": station_ids,
                              "delivered": not problem, "problem": problem})
        db.session.commit()
        return not problem
