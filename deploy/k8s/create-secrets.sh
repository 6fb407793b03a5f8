#!/bin/sh
# Creates (or updates) the Secrets one overlay's pods read, from the files deploy/compose/make-secrets.sh makes
# (run it as yourself, not as root, so kubectl can read them). Nothing is written to disk here.
#
#   deploy/k8s/create-secrets.sh central      -n beacon [--context central-cluster]
#   deploy/k8s/create-secrets.sh us-east      -n beacon [--context us-east-cluster]
#
# Everything after the overlay's name is passed to kubectl. A region's Secrets hold that region's passwords
# and key only; the central ones hold no runner's.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src="${BEACON_SECRETS:-$here/../compose/secrets/regions}"
[ $# -ge 1 ] || { echo "usage: $0 central|us-east|eu-west|asia-pacific [kubectl options]" >&2; exit 2; }
overlay=$1
shift

KUBECTL_ARGS="$*"
secret() { # NAME --from-file=…: create the Secret NAME, or update it (client-side render, then apply)
    name=$1
    shift
    # shellcheck disable=SC2086 # the caller's kubectl options, word by word
    kubectl create secret generic "$name" "$@" --dry-run=client -o yaml | kubectl apply $KUBECTL_ARGS -f -
}

case $overlay in
central)
    c="$src/central"
    secret beacon-admin --from-file=kafka-admin="$c/kafka/admin" --from-file=postgres-admin="$c/postgres/admin"
    secret beacon-links \
        --from-file=kafka-mirror-us-east="$c/kafka/mirror-us-east" \
        --from-file=kafka-mirror-eu-west="$c/kafka/mirror-eu-west" \
        --from-file=kafka-mirror-asia-pacific="$c/kafka/mirror-asia-pacific"
    secret beacon-migrator --from-file=postgres-migrator="$c/postgres/migrator"
    secret beacon-recorder --from-file=kafka-recorder="$c/kafka/recorder" --from-file=postgres-recorder="$c/postgres/recorder"
    secret beacon-submitter --from-file=kafka-submitter="$c/kafka/submitter" --from-file=postgres-submitter="$c/postgres/submitter"
    secret beacon-reader --from-file=postgres-reader="$c/postgres/reader"
    # A keys Secret: trusted.json and the private keys (file names kept: <role>.<id>.key).
    secret beacon-keys-central --from-file="$c/keys/central/trusted.json" --from-file="$c/keys/central/private/"
    secret beacon-keys-recorder --from-file="$c/keys/recorder/trusted.json" --from-file="$c/keys/recorder/private/"
    secret beacon-keys-submitter --from-file="$c/keys/submitter/trusted.json" --from-file="$c/keys/submitter/private/"
    secret beacon-keys-public --from-file="$c/keys/reader/trusted.json"
    ;;
us-east | eu-west | asia-pacific)
    r="$src/$overlay"
    secret "beacon-admin-$overlay" --from-file=kafka-admin="$r/kafka/admin"
    secret "beacon-runner-$overlay" --from-file="kafka-runner-$overlay=$r/kafka/runner-$overlay"
    secret "beacon-link-$overlay" --from-file="kafka-mirror-$overlay=$r/kafka/mirror-$overlay"
    secret "beacon-keys-runner-$overlay" \
        --from-file="$r/keys/runner-$overlay/trusted.json" --from-file="$r/keys/runner-$overlay/private/"
    ;;
*)
    echo "$0: no overlay $overlay (central, us-east, eu-west, asia-pacific)" >&2
    exit 2
    ;;
esac
