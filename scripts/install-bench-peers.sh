#!/usr/bin/env bash
# Install what the benchmarks in bench/ compare against (their "peers"), only what is missing.
# Run as root (Debian packages); never reads stdin; running it again changes nothing.
#
#   bench/face_login.py   the face_recognition library (PyPI), into the virtualenv
#   bench/recording.py    the ffmpeg CLI
#   bench/upload.py       curl (and ffmpeg for its test clip)
#   bench/login_flood.py  redis-server
#   bench/central_sync.py rclone (and ffmpeg for its recorded attempt; the Ceph RADOS Gateway it
#                         syncs to comes with scripts/install-system.sh)
#
# Usage: scripts/install-bench-peers.sh [VENV]   (default .venv)
set -euo pipefail
exec </dev/null

VENV=${1:-.venv}
PY="$VENV/bin/python"

DEBIAN_PACKAGES=(ffmpeg curl redis-server rclone)

bash "$(dirname "$0")/apt-missing.sh" "${DEBIAN_PACKAGES[@]}"

# face_recognition pins dlib, which pip would compile from source: the project already has dlib
# as dlib-bin (a wheel) and face_recognition's other needs (face_recognition_models, numpy,
# Pillow, Click) are the project's dependencies too, so the peer goes in without its own.
# Its version is the one whose sdist provisioning/assets.py takes the test photos from.
if [[ ! -x $PY ]]; then
  echo "no virtualenv at $VENV (run make venv first)" >&2
  exit 1
fi
if ! "$PY" -c "import face_recognition" 2>/dev/null; then
  echo "installing the face_recognition peer into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check --no-input --no-deps -r bench/requirements-peers.txt
  "$PY" -c "import face_recognition"
fi
