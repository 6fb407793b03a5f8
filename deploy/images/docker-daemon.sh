#!/usr/bin/env bash
# What `make image` needs before it builds: a Docker daemon that answers, and debootstrap for the local base.
# A daemon of yours that answers is used as it is. Otherwise, on Debian, Debian's docker.io and debootstrap are
# installed (through sudo when not root) and, as root, a daemon is started the way this kind of machine allows
# (vfs storage, no iptables, no bridge: containers use the host's network), logging to .beacon/logs/dockerd.log.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { echo "error: install Docker and debootstrap with your package manager" >&2; exit 2; }
  echo "installing docker.io and debootstrap from Debian's archive …"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null
fi
docker info >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "error: no Docker daemon answers. Start one (sudo systemctl start docker), or as root:" >&2
  echo "  dockerd --storage-driver=vfs --iptables=false --bridge=none &" >&2
  exit 2
fi
mkdir -p .beacon/logs
nohup dockerd --storage-driver=vfs --iptables=false --bridge=none >>.beacon/logs/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "started dockerd (vfs storage, host networking); log: .beacon/logs/dockerd.log"; exit 0; }
  sleep 0.5
done
echo "error: dockerd did not answer within 30 s; the end of its log:" >&2
tail -20 .beacon/logs/dockerd.log >&2
exit 1
