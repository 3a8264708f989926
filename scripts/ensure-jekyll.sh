#!/usr/bin/env bash
# Makes sure the blog tests (tests/test_jekyll.py) have Jekyll and the minima theme.
#
# They build a small Jekyll blog with the exported post, with Debian's jekyll
# and jekyll-theme-minima packages: as root they are installed with apt-get
# when missing; as another user this says what to install and fails.
set -euo pipefail

have() {
  command -v jekyll >/dev/null 2>&1 && [ -d /usr/share/rubygems-integration/all/gems ] \
    && ls -d /usr/share/rubygems-integration/all/gems/minima-* >/dev/null 2>&1
}

if have; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  cat >&2 <<MSG
error: the blog tests need Jekyll with the minima theme, and they are missing.
  Install Debian's packages:  sudo apt-get install jekyll jekyll-theme-minima
MSG
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: jekyll is missing and there is no apt-get to install it with." >&2
  echo "  Install Jekyll 4 and the minima theme gem." >&2
  exit 1
fi

echo "Installing Debian's jekyll and jekyll-theme-minima for the blog tests (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends jekyll jekyll-theme-minima
have || { echo "error: jekyll or the minima theme still missing after apt-get" >&2; exit 1; }
