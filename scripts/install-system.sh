#!/usr/bin/env bash
# The Debian packages the tests and `make serve-proxy` use: headless Chromium and its driver (the
# real-browser test), nginx (the buffering proxy), openssl (the HTTPS test's certificate) and
# PostgreSQL (the shared live layer; the tests start a throwaway server of their own). Installs
# only what is missing; needs root or sudo for that, otherwise the tests that need a package skip
# and say why.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null; then
  SUDO="sudo"
else
  echo "install-system: not root and no sudo; tests needing ${missing[*]} will be skipped" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-system: no apt-get here; install ${missing[*]} yourself" >&2
  exit 0
fi
echo "Installing ${missing[*]} (Debian packages) ..."
$SUDO apt-get update -qq
# No service is started by the install (policy-rc.d may refuse anyway): the tests start their own.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
