"""The station as a runtime with ports: ``runner`` wires the components and runs the loop around the
pure state machine (``station.flow``), writing its state through to the journal.

- ``context``: what the handlers share (settings, clock, journal, state, event queue, I/O pool).
- ``handlers``: the flow's commands, one handler each, in one table checked at import.
- ``edge_commands``: the edge's MQTT commands (``examkiosk_wire.commands``), one handler per kind.
- components with ``start()``/``stop()`` on one stop event: ``capture`` (the capture hub),
  ``recorders`` (the recording and its journal), ``watchers`` (camera watch, flag watcher),
  ``edge`` (discovery, clock, MQTT), ``status`` (status, snapshots, polls, disk watch); the outbox
  and the uploader live in ``station.link`` and ``station.storage``.
- ``kiosk_port``: the kiosk's port (``station.kiosk.port``) on the runtime's side.
- ``main``: the ``examkiosk-station`` program.
"""
