"""The kiosk UI: a small local web app on 127.0.0.1 that the kiosk browser shows.

``app`` is the Flask app and its server; it reads one immutable view snapshot and asks the station
for a few things through ``port`` (``KioskView``, ``KioskPort``), never the runtime's attributes.
``bodies`` are the request bodies it takes, ``content`` the reading texts, ``paper_view`` what it
shows of the paper and which images it serves.
"""
