#!/bin/sh
# Candor image entrypoint: serve the artifacts mounted at $CANDOR_MODELS_DIR (/models), or the
# default artifact bundled in the image when nothing is mounted there (no <name>/<version>/manifest.json).
set -eu

models="${CANDOR_MODELS_DIR:-/models}"
bundled="${BUNDLED_MODELS_DIR:-/opt/candor/models}"

if [ -z "$(find "$models" -mindepth 3 -maxdepth 3 -name manifest.json 2>/dev/null | head -n 1)" ]; then
    echo "candor-entrypoint: no artifact under $models; serving the bundled models in $bundled" >&2
    models="$bundled"
fi
CANDOR_MODELS_DIR="$models"
export CANDOR_MODELS_DIR

exec "$@"
