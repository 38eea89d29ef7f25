#!/usr/bin/env bash
# Install the Debian packages examkiosk needs, only those that are missing. Run as root.
set -euo pipefail

PACKAGES=(
  python3 python3-venv python3-dev gcc          # the virtualenv; PyAudio compiles
  portaudio19-dev                               # PyAudio
  ffmpeg                                        # demo media, segment joins, ffprobe
  mosquitto mosquitto-clients                   # the MQTT broker and mosquitto_passwd
  redis-server                                  # RQ's queue
  postgresql postgresql-client                  # the second database the tests run on
  chromium fonts-noto-cjk                       # the kiosk browser and the page tests
  xvfb xdotool                                  # the kiosk escape test: real keys into Chromium under X
  cage xwayland                                 # the kiosk's compositor (headless in the compositor test)
  espeak-ng                                     # Mandarin voice prompts
  ceph-mon ceph-osd radosgw                     # a real S3 server (RADOS Gateway) for the central-storage tests and `make demo STORAGE=s3`
  systemd                                       # systemd-analyze verify of the units
  ca-certificates
)

bash "$(dirname "$0")/apt-missing.sh" "${PACKAGES[@]}"
