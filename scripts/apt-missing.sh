#!/usr/bin/env bash
# Install the named Debian packages that are not installed yet; as root, never from stdin.
# Usage: scripts/apt-missing.sh PACKAGE...   (prints what it installs; exits 1 when not root and something is missing)
set -euo pipefail
exec </dev/null

missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
