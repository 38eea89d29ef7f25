"""Benchmarks: each module prints one JSON line (``python -m bench.<name>``).

``make bench`` installs what they compare against (``scripts/install-bench-peers.sh``: ffmpeg,
curl, redis-server and rclone from Debian, ``bench/requirements-peers.txt`` from PyPI) and runs
every one of them.
"""
