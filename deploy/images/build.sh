#!/usr/bin/env bash
# `make image`: Beacon's image and the images its tests run Kafka, PostgreSQL and MirrorMaker in.
#
#   beacon:<version>          every service (deploy/images/beacon.Dockerfile)
#   beacon-kafka:4.4.0        Kafka, KRaft, SASL/SCRAM + ACLs, from its Maven Central jars
#   beacon-mirrormaker:4.3.1  MirrorMaker 2, from its Maven Central jars
#   beacon-postgres:15        PostgreSQL 15 from Debian's packages
#
# BEACON_IMAGE_BASE names the base image (a python:3.11-slim-bookworm, say). Unset, and with no registry to
# pull from, a Debian bookworm root file system is made once with debootstrap from Debian's own mirror and
# imported as beacon-base:bookworm. Everything is built with the host's network (no bridge here).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' cli/pyproject.toml)
kafka_version=$(sed -n 's/.*<kafka.version>\(.*\)<.*/\1/p' deploy/beacon/deploy/local/kafka-jars/pom.xml)
mirror_version=$(sed -n 's/.*<mirror.version>\(.*\)<.*/\1/p' deploy/beacon/deploy/local/mirror-jars/pom.xml)
mirror=${BEACON_DEBIAN_MIRROR:-http://deb.debian.org/debian}

docker info >/dev/null 2>&1 || {
  echo "error: no Docker daemon answers. Start one (as root: dockerd --storage-driver=vfs --iptables=false --bridge=none &)" >&2
  exit 2
}
began=$SECONDS
step() { printf '  %-28s %s\n' "$1" "$2"; }

base=${BEACON_IMAGE_BASE:-beacon-base:bookworm}
if [ -z "${BEACON_IMAGE_BASE:-}" ] && ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "error: no debootstrap to make the base image: apt-get install debootstrap" >&2; exit 2; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  t=$SECONDS
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root/fs" "$mirror" >"$root/log" 2>&1 \
    || { tail -20 "$root/log" >&2; exit 1; }
  rm -rf "$root/fs/var/cache/apt/archives/"*.deb "$root/fs/var/lib/apt/lists/"*
  # This base stands in for the public one on this machine only, so it trusts what the machine trusts (its
  # certificate bundle, with any egress proxy's authority in it), and pip and uv are told to use that bundle.
  cp /etc/ssl/certs/ca-certificates.crt "$root/fs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$root/fs" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1' \
    - "$base" >/dev/null
  rm -rf "$root"
  step "$base" "made with debootstrap in $((SECONDS - t)) s"
fi

build() {  # tag, dockerfile, context, build args…
  local tag=$1 file=$2 context=$3 t=$SECONDS
  shift 3
  local log
  log=$(mktemp)
  docker build --network host "$@" -f "$file" -t "$tag" "$context" >"$log" 2>&1 || { tail -40 "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
  docker tag "$tag" "localhost/$tag"  # the name Compose asks for by default (BEACON_REGISTRY=localhost)
  step "$tag" "built in $((SECONDS - t)) s, $(docker image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
}

# The jars, resolved from Maven Central once into the local cache (make up does the same for Kafka).
jars() {  # pom, folder
  local folder=$2
  if [ ! -d "$folder" ] || [ -z "$(ls -A "$folder")" ]; then
    mkdir -p "$folder"
    mvn -q -B -f "$1" dependency:copy-dependencies -DoutputDirectory="$folder" -DincludeScope=runtime
  fi
  [ -n "$(ls -A "$folder")" ] || { echo "error: Maven put no jar in $folder" >&2; exit 1; }
}
cache=$(realpath -m "${BEACON_STATE_DIR:-.beacon}/cache")  # absolute: Maven resolves paths from the pom's folder
jars deploy/beacon/deploy/local/kafka-jars/pom.xml "$cache/kafka-lib-$kafka_version"
jars deploy/beacon/deploy/local/mirror-jars/pom.xml "$cache/mirror-lib-$mirror_version"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/kafka" "$context/mirror"
cp -r "$cache/kafka-lib-$kafka_version" "$context/kafka/lib"
cp deploy/images/kafka-entrypoint.sh "$context/kafka/"
cp -r "$cache/mirror-lib-$mirror_version" "$context/mirror/lib"
# The cache is private (make up keeps .beacon/ mode 600/700); in the image the jars must be readable by its user.
chmod -R a+rX "$context"

build "beacon:$version" deploy/images/beacon.Dockerfile . --build-arg "BASE=$base"
build beacon-postgres:15 deploy/images/postgres.Dockerfile deploy/images --build-arg "BASE=$base"
build beacon-jre:17 deploy/images/jre.Dockerfile deploy/images --build-arg "BASE=$base"
build "beacon-kafka:$kafka_version" deploy/images/kafka.Dockerfile "$context/kafka" --build-arg JRE=beacon-jre:17
build "beacon-mirrormaker:$mirror_version" deploy/images/mirrormaker.Dockerfile "$context/mirror" --build-arg JRE=beacon-jre:17
echo "images ready in $((SECONDS - began)) s"
