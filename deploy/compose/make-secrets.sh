#!/bin/sh
# Makes every password and signing key the Compose layouts (single.yaml, regions.yaml) and the Kubernetes
# manifests (deploy/k8s/create-secrets.sh) read, under deploy/compose/secrets/ (gitignored):
#
#   single/kafka/<principal>    admin, broker, controller, submitter, recorder, runner-<region>
#   single/postgres/<role>      admin (the superuser), migrator, recorder, submitter, reader
#   single/keys/<who>/          trusted.json (every public key) + private/ (only <who>'s key): submitter,
#                               recorder, runner-<region>; reader (no private key); all (every key: init)
#   regions/central/kafka/      admin, broker, controller, submitter, recorder, mirror-<region>
#   regions/central/postgres/   as single/postgres
#   regions/central/keys/       submitter, recorder, reader; central (the submitter's and recorder's: init)
#   regions/<region>/kafka/     that cluster's own admin, broker, controller, runner-<region>, mirror-<region>
#   regions/<region>/keys/      runner-<region>
#
# Passwords are 48 random hex digits (nothing to quote in a JAAS line or a URL), written without a newline
# (Kafka's DirectoryConfigProvider reads a file as it is). Files are mode 600 and folders 700. A file that
# exists is kept: delete one and run this again to rotate it (then run the init service again).
#
# Compose bind-mounts secrets as they are on the host (its uid/gid/mode settings do nothing for files), and
# the containers run as uid 10001 and refuse a password file others may read: so, run as root (sudo), this
# hands everything to 10001:10001. For Kubernetes, run it as yourself: kubectl then reads the files.
#
# The keys are made with `beacon keys generate`: ../../.venv/bin/beacon when this checkout is installed,
# else the image (docker run --rm … ${BEACON_REGISTRY:-localhost}/beacon:${BEACON_VERSION:-0.1.0}); set
# BEACON to another command to choose. By hand: BEACON_KEYS_DIR=DIR beacon keys generate --role recorder.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/secrets"
regions="us-east eu-west asia-pacific"
image="${BEACON_REGISTRY:-localhost}/beacon:${BEACON_VERSION:-0.1.0}"
umask 077

password() { # FILE: a new random password, unless the file has one
    if [ ! -s "$1" ]; then
        mkdir -p "$(dirname "$1")"
        od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$1"
    fi
}

beacon_keys() { # DIR ARGS…: `beacon keys generate ARGS --dir DIR`
    dir=$1
    shift
    mkdir -p "$dir"
    if [ -n "${BEACON:-}" ]; then
        $BEACON keys generate "$@" --dir "$dir"
    elif [ -x "$here/../../.venv/bin/beacon" ]; then
        "$here/../../.venv/bin/beacon" keys generate "$@" --dir "$dir"
    else # as the caller, so the files are the caller's (then handed to 10001 below when root)
        docker run --rm --user "$(id -u):$(id -g)" -e BEACON_STATE_DIR=/tmp -w /tmp -v "$dir:/keys" "$image" \
            keys generate "$@" --dir /keys
    fi
}

keys() { # STAGING BINDING…: every key of a layout made once in STAGING (so trusted.json holds them all)
    staging=$1
    shift
    [ -s "$staging/trusted.json" ] && return 0
    for binding in "$@"; do
        case $binding in
        runner-*) beacon_keys "$staging" --role runner --region "${binding#runner-}" >/dev/null ;;
        *) beacon_keys "$staging" --role "$binding" >/dev/null ;;
        esac
    done
}

share() { # STAGING DEST [BINDING…]: DEST gets trusted.json and the private keys of these bindings only
    staging=$1 dest=$2
    shift 2
    [ -s "$dest/trusted.json" ] && return 0
    mkdir -p "$dest/private"
    cp "$staging/trusted.json" "$dest/trusted.json"
    for binding in "$@"; do
        cp "$staging/private/$binding".*.key "$dest/private/"
    done
}

# --- single.yaml: one Kafka cluster -------------------------------------------------------------------
s="$out/single"
for p in admin broker controller submitter recorder; do password "$s/kafka/$p"; done
for r in $regions; do password "$s/kafka/runner-$r"; done
for role in admin migrator recorder submitter reader; do password "$s/postgres/$role"; done
runners=""
for r in $regions; do runners="$runners runner-$r"; done
# shellcheck disable=SC2086 # word splitting of the bindings is meant
keys "$s/keys/all" submitter recorder $runners
for who in submitter recorder $runners; do share "$s/keys/all" "$s/keys/$who" "$who"; done
share "$s/keys/all" "$s/keys/reader"

# --- regions.yaml: a central cluster and one per region, each with passwords of its own ---------------
c="$out/regions/central"
for p in admin broker controller submitter recorder; do password "$c/kafka/$p"; done
for r in $regions; do password "$c/kafka/mirror-$r"; done
for role in admin migrator recorder submitter reader; do password "$c/postgres/$role"; done
staging="$out/regions/.staging-keys" # every key once, then each to its own trust domain
# shellcheck disable=SC2086
keys "$staging" submitter recorder $runners
share "$staging" "$c/keys/central" submitter recorder
for who in submitter recorder; do share "$staging" "$c/keys/$who" "$who"; done
share "$staging" "$c/keys/reader"
for r in $regions; do
    for p in admin broker controller "runner-$r" "mirror-$r"; do password "$out/regions/$r/kafka/$p"; done
    share "$staging" "$out/regions/$r/keys/runner-$r" "runner-$r"
done
rm -rf "$staging/private" # the private keys now live only where they are used

find "$out" -mindepth 1 -type d -exec chmod 700 {} +
find "$out" -mindepth 1 -type f ! -name .gitignore -exec chmod 600 {} +
if [ "$(id -u)" = 0 ]; then
    find "$out" -mindepth 1 ! -name .gitignore -exec chown 10001:10001 {} +
    echo "secrets in $out, owned by 10001:10001 (the containers' user), files mode 600"
else
    echo "secrets in $out, files mode 600, owned by you: fine for deploy/k8s/create-secrets.sh."
    echo "For Compose, the containers (uid 10001) must own them: sudo chown -R 10001:10001 $out/single $out/regions"
fi
