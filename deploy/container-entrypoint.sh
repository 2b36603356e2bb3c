#!/bin/sh
# Entry point of the Gatehouse container image (see deploy/Containerfile).
#
# On first start, when the volume has no gatehouse.toml yet, it runs `gatehouse init` there:
# the CA key and host key are made in the volume at run time, so no two containers built from
# the same image share a CA. Then it runs `gatehouse` with the container's arguments
# (by default: serve --config /var/lib/gatehouse/gatehouse.toml).
set -eu

home=${GATEHOUSE_HOME:-/var/lib/gatehouse}
config=$home/gatehouse.toml

if [ ! -e "$config" ]; then
    gatehouse init "$home"
    # Inside a container, 127.0.0.1 is only the container itself: listen on every interface
    # (the published port decides who can reach it). Done once, on the generated file only;
    # an operator's later edits are kept.
    sed -i 's/^listen *= *"127\.0\.0\.1:2222"/listen   = "0.0.0.0:2222"/' "$config"
fi

if grep -Eq '^listen *= *"(127\.|\[::1\]|localhost)' "$config"; then
    echo "warning: $config listens on a loopback address; the container cannot be reached" \
        "from outside. Set listen = \"0.0.0.0:2222\"." >&2
fi

exec gatehouse "$@"
