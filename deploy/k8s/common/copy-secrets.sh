#!/bin/sh
# An initContainer's script: copies the pod's Secret volumes into memory-backed emptyDirs, as uid 10001, files
# mode 600. Why: Beacon refuses a password file others can read, and Kubernetes mounts a Secret's files as
# root's, made group-readable for fsGroup — usable by 10001 only through that group, which the check refuses.
#   /src/secrets  kafka/<principal>, postgres/<role> (the volume's items name the paths) -> /run/secrets/beacon
#   /src/keys     trusted.json and <role>[-<region>].<id>.key files                     -> /run/secrets/beacon-keys
set -eu
umask 077
copy() { # SRC DEST: SRC's entries, not Kubernetes' own ..data links (dot files, left out by the glob)
    for entry in "$1"/*; do
        if [ -e "$entry" ]; then cp -RL "$entry" "$2/"; fi
    done
}
if [ -d /src/secrets ]; then copy /src/secrets /run/secrets/beacon; fi
if [ -d /src/keys ]; then
    mkdir -p /run/secrets/beacon-keys/private
    for entry in /src/keys/*; do
        case "$entry" in
        *.key) cp -L "$entry" /run/secrets/beacon-keys/private/ ;;
        *) if [ -f "$entry" ]; then cp -L "$entry" /run/secrets/beacon-keys/; fi ;;
        esac
    done
fi
# The mount points are the kubelet's; what is in them is this user's alone.
for dest in /run/secrets/beacon /run/secrets/beacon-keys; do
    if [ -d "$dest" ]; then
        find "$dest" -mindepth 1 -type d -exec chmod 700 {} +
        find "$dest" -mindepth 1 -type f -exec chmod 600 {} +
    fi
done
