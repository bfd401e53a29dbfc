#!/usr/bin/env bash
# Drives the Log Explorer in headless Chromium: builds the intake and, for each *.test.mjs (one file at a time), starts a fresh local
# intake on a free port, runs the file against it and stops it. Exits non-zero on any
# failure. Arguments name test files to run instead of all of them. Each test gets INTAKE_URL (the intake's base URL) and INTAKE_TOKEN (its token: send
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

# Each test file gets its own intake (its own data dir, port and token): a file's counts and
# facets see only the logs it sent, whatever ran before it.
start_intake() {
  local dir="$work/$1"
  mkdir -p "$dir"
  "$serve" --listen 127.0.0.1:0 --data-dir "$dir/intake" >"$dir/serve.out" 2>"$dir/serve.err" &
  server_pid=$!
  url=""; token=""
  for _ in $(seq 1 100); do
    url=$(sed -n 's/^listening on //p' "$dir/serve.out")
    token=$(sed -n 's/^token //p' "$dir/serve.out")
    [ -n "$url" ] && [ -n "$token" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$dir/serve.err" >&2; return 1; }
    sleep 0.1
  done
  echo "run.sh: intake did not start" >&2; cat "$dir/serve.err" >&2; return 1
}
stop_intake() {
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

mkdir -p "$root/artifacts"
failed=()
files=("$@"); [ ${#files[@]} -gt 0 ] || files=("$here"/*.test.mjs)
for file in "${files[@]}"; do
  name=$(basename "$file" .test.mjs)
  start_intake "$name"
  if ! INTAKE_URL="$url" INTAKE_TOKEN="$token" CHROMIUM="$chromium" PROFILE_DIR="$work/$name/profile" ARTIFACTS="$root/artifacts" \
    node --test --test-reporter=spec "$file"; then
    failed+=("$name")
  fi
  stop_intake
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run.sh: failing test files: ${failed[*]}" >&2
  exit 1
fi
echo "run.sh: every browser test file passed"
