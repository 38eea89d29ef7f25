"""The station's link to the edge server.

- ``client``: :class:`EdgeClient`, the station API, and ``errors``: :class:`EdgeUnavailable`
  (try again later), :class:`EdgeUntrusted`, :class:`EdgeRejected` (the edge said no).
- ``clock``: :class:`Clock`, the station's offset to the edge's clock, which is the exam's clock.
- ``mqtt``: :class:`StatusPublisher`, the retained status, events, snapshots and commands over MQTT.
- ``outbox``: :class:`EventOutbox`, events through the journal to MQTT or the API, none lost.

Discovery lives in ``examkiosk_wire.discovery``.
"""
from station.link.client import EdgeClient
from station.link.clock import Clock
from station.link.errors import EdgeRejected, EdgeUnavailable, EdgeUntrusted, LinkError
from station.link.mqtt import StatusPublisher

__all__ = ["Clock", "EdgeClient", "EdgeRejected", "EdgeUnavailable", "EdgeUntrusted", "LinkError", "StatusPublisher"]
