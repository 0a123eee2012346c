#!/bin/sh
# Herald's deployment manager: deploy, promote-canary, rollback, backup,
# list-backups, health-check, status (--help says more). The workflows and a
# human on call both use this. The logic is TypeScript (scripts/deploy/): it
# reads the CLI's JSON, Prometheus's text format and Kong's config, and is
# tested by npm test; this script finds Deno and runs it.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
# The Supabase CLI the repository pins (package.json, installed by npm ci) goes first.
if [ -x "$root/node_modules/.bin/supabase" ]; then
  PATH="$root/node_modules/.bin:$PATH"
  export PATH
fi
if [ -x "$root/node_modules/.bin/deno" ]; then
  deno="$root/node_modules/.bin/deno"
elif command -v deno >/dev/null 2>&1; then
  deno=deno
else
  sh "$root/scripts/deno.sh" --version >/dev/null
  deno="$root/node_modules/.bin/deno"
fi
exec "$deno" run --allow-all --quiet --config "$root/deno.json" "$root/scripts/deploy/main.ts" "$@"
