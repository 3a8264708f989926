#!/usr/bin/env bash
# Makes sure the browser tests (tests/test_site_browser.py) have a Chromium.
#
# $CLIPIG_CHROMIUM, when set, names the Chromium-based binary to use instead
# (GitHub's runners have Chrome preinstalled); it must exist. Otherwise the
# tests use Debian's /usr/bin/chromium: as root it is installed with apt-get
# when missing; as another user this says what to install and fails.
set -euo pipefail

if [ -n "${CLIPIG_CHROMIUM:-}" ]; then
  if [ -x "$CLIPIG_CHROMIUM" ]; then
    exit 0
  fi
  echo "error: CLIPIG_CHROMIUM=$CLIPIG_CHROMIUM is not an executable file." >&2
  echo "  Point it at a Chromium-based browser, or unset it to use /usr/bin/chromium." >&2
  exit 1
fi

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  cat >&2 <<EOF
error: the browser tests need Chromium, and $CHROMIUM is missing.
  Install Debian's chromium package:  sudo apt-get install chromium
  or point CLIPIG_CHROMIUM at a Chromium-based browser, e.g.
    make test CLIPIG_CHROMIUM=/usr/bin/google-chrome
EOF
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: $CHROMIUM is missing and there is no apt-get to install it with." >&2
  echo "  Install Chromium, or point CLIPIG_CHROMIUM at a Chromium-based browser." >&2
  exit 1
fi

echo "Installing Debian's chromium for the browser tests (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium
if [ ! -x "$CHROMIUM" ]; then
  echo "error: apt-get installed chromium but $CHROMIUM is still missing." >&2
  exit 1
fi
echo "Installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")." >&2
