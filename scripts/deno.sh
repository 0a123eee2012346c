#!/bin/sh
# Runs the project's pinned Deno, installing it from the npm registry on first use.
set -e
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/deno ]; then
  echo "herald: installing Deno from npm (first run)…" >&2
  npm install --no-audit --no-fund --loglevel=error >&2
fi
exec node_modules/.bin/deno "$@"
