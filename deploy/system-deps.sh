#!/usr/bin/env bash
# The one place that installs the system packages `make demo` and `make test` need, from Debian's archive:
# Python 3.11+ with venv, Java 17+ and Maven (Kafka), PostgreSQL 15+ server binaries, Chromium (the portal's
# browser test). Only what is missing, through sudo when not root. Silent when nothing is missing, so
# `make install` (and with it `make up`, `make demo`, `make test`) runs it every time; `make system-deps`
# runs it alone, and so does .ci/run: CI and a newcomer take the same path.
set -euo pipefail

missing=() # Debian package names
reasons=()
need() {
  missing+=("$1")
  reasons+=("$2")
}

check() {
  missing=()
  reasons=()
  python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
    need python3-venv "Python 3.11+ with venv"
  local java_major
  java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1 || true)
  [ "${java_major:-0}" -ge 17 ] 2>/dev/null || need openjdk-17-jre-headless "Java 17+ (Kafka)"
  command -v mvn >/dev/null 2>&1 || need maven "Maven (fetches Kafka's jars once)"
  local pg=no bin
  for bin in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$bin" ] && [ "$(basename "$(dirname "$(dirname "$bin")")")" -ge 15 ] 2>/dev/null && pg=yes
  done
  [ $pg = yes ] || need postgresql "PostgreSQL 15+ server binaries"
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
    need chromium "Chromium (the portal's browser test)"
}

check
[ ${#missing[@]} -eq 0 ] && exit 0

list=$(printf '%s, ' "${reasons[@]}")
echo "missing: ${list%, }"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "this is not a Debian-like system: install them with your package manager, then run make again" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "not root and no sudo: as root, run: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${sudo[*]:+${sudo[*]} }apt-get install -y ${missing[*]}   (deploy/system-deps.sh, make system-deps)"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"

check
if [ ${#missing[@]} -gt 0 ]; then
  list=$(printf '%s, ' "${reasons[@]}")
  echo "still missing after apt-get install: ${list%, }" >&2
  exit 1
fi
