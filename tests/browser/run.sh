#!/usr/bin/env bash
# Drives the Log Explorer in headless Chromium: builds and starts ONE local intake on a free
# port, runs every *.test.mjs against it (one file at a time), stops it. Exits non-zero on any
# failure. Each test gets INTAKE_URL (the intake's base URL) and INTAKE_TOKEN (its token: send
# it as `Authorization: Bearer $INTAKE_TOKEN` or DD-API-KEY, and open the Explorer as
# `$INTAKE_URL/?token=$INTAKE_TOKEN`, which sets the cookie and redirects to `/`).
# Needs: apt-get install -y chromium nodejs npm   (the browser is never downloaded)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "run.sh: $chromium not found; apt-get install -y chromium" >&2; exit 1; }

cd "$here"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --loglevel=error

cd "$root"
cargo build --quiet -p cairn-intake --example serve
serve="${CARGO_TARGET_DIR:-$root/target}/debug/examples/serve"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$serve" --listen 127.0.0.1:0 --data-dir "$work/intake" >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^listening on //p' "$work/serve.out")
  token=$(sed -n 's/^token //p' "$work/serve.out")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "run.sh: intake did not start" >&2; cat "$work/serve.err" >&2; exit 1; }
[ -n "$token" ] || { echo "run.sh: the intake printed no token" >&2; exit 1; }

mkdir -p "$root/artifacts"
INTAKE_URL="$url" INTAKE_TOKEN="$token" CHROMIUM="$chromium" PROFILE_DIR="$work/profile" ARTIFACTS="$root/artifacts" \
  node --test --test-concurrency=1 --test-reporter=spec "$here"/*.test.mjs
