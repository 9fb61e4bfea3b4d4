#!/usr/bin/env bash
# Headless Chromium and its driver for the real-browser test (Debian packages chromium and
# chromium-driver). Does nothing when both are installed; needs root or sudo otherwise.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null; then
  SUDO="sudo"
else
  echo "install-browser: not root and no sudo; the browser test will be skipped" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-browser: no apt-get here; install Chromium and ChromeDriver yourself" >&2
  exit 0
fi
echo "Installing chromium and chromium-driver for the browser test ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
