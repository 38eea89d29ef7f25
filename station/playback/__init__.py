"""Watching a mock attempt back at the kiosk (回看): the station's own segments, remuxed to MP4.

``plan`` (pure) lays an attempt's journaled segments out per camera on one timeline, with its
per-question chapters and what the check found (seconds recorded and expected); ``remux`` copies
one camera's Matroska segments into one MP4 (+faststart, no re-encoding) with PyAV; ``store``
keeps those temporary files in one folder of the station's data and removes them when the
watch-back ends (or at the next start); ``errors`` says why there is nothing to watch.
"""
