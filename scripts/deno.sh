#!/bin/sh
# Runs the project's pinned Deno, installing it from the npm registry on first use.
set -e
cd "$(dirname "$0")/.."
# First run, or package-lock.json changed since the last install (a new dev dependency).
if [ ! -x node_modules/.bin/deno ] || [ ! -f node_modules/.package-lock.json ] ||
  [ -n "$(find package-lock.json -newer node_modules/.package-lock.json)" ]; then
  echo "herald: installing Deno and the dev dependencies from npm…" >&2
  npm install --no-audit --no-fund --loglevel=error >&2
fi
exec node_modules/.bin/deno "$@"
