#!/bin/sh
# As the official image's entrypoint: a redis-server started without a config file listens beyond
# loopback, so its protected mode (which refuses remote clients without a password) is turned off.
set -eu
if [ "${1:-}" = redis-server ]; then
    set -- "$@" --protected-mode no
fi
exec "$@"
