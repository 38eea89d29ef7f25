#!/usr/bin/env bash
# Install what the benchmarks in bench/ compare against (their "peers"), only what is missing.
# Run as root (Debian packages); never reads stdin; running it again changes nothing.
#
#   bench/face_login.py   the face_recognition library (PyPI), into the virtualenv
#   bench/recording.py    the ffmpeg CLI
#   bench/upload.py       curl (and ffmpeg for its test clip); node and npm (the Debian nodejs and npm
#                         packages, unless a node/npm is already on PATH) and the tus reference
#                         server @tus/server + @tus/file-store, installed with `npm ci` into
#                         bench/tus_reference/node_modules exactly as its package-lock.json pins them
#                         (they need node >= 20.19: on Debian 12, whose nodejs is 18, it stops and
#                         says so)
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
# A node from elsewhere (e.g. NodeSource's nodejs, which brings its own npm) is kept: Debian's npm
# package would conflict with it.
command -v node >/dev/null || DEBIAN_PACKAGES+=(nodejs)
command -v npm >/dev/null || DEBIAN_PACKAGES+=(npm)

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

# The tus reference server for bench/upload.py: the versions package-lock.json pins, nothing else.
# @tus/server 2.x needs node >= 20.19 (Debian 12's nodejs is 18.x; Debian 13's is 20.19).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "node $(node --version) is older than 20.19, which @tus/server 2.x needs; install a newer Node.js" \
    "(e.g. NodeSource's nodejs 20 or 22) and run this again" >&2
  exit 1
fi
TUS_REFERENCE="$(cd "$(dirname "$0")/.." && pwd)/bench/tus_reference"
if [[ ! -d $TUS_REFERENCE/node_modules ]]; then
  echo "installing @tus/server and @tus/file-store into $TUS_REFERENCE/node_modules"
  (cd "$TUS_REFERENCE" && npm ci --no-audit --no-fund --loglevel=error)
fi
