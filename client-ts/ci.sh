#!/usr/bin/env bash
# CI for the TypeScript SDK: install, typecheck, lint, build, type-check the React Native
# example (against dist/), print the bundle size, test against real nodes (the browser
# tests include examples/browser-chat).
# Needs the `tether` binary: $TETHER_BIN, else ../target/debug/tether. The headless
# Chromium test runs when /usr/bin/chromium (or $CHROMIUM_PATH) exists and is skipped
# (reported as such in the TAP summary) otherwise; with CLIENT_TS_REQUIRE_BROWSER=1 (set by
# .ci/run, which installs Debian's chromium) a missing browser fails it instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ -z "${TETHER_BIN:-}" ]]; then
  TETHER_BIN="$(pwd)/../target/debug/tether"
fi
if [[ ! -x "$TETHER_BIN" ]]; then
  echo "ci.sh: no tether binary at $TETHER_BIN (build it, or set TETHER_BIN)" >&2
  exit 1
fi
export TETHER_BIN

npm ci
npm run typecheck
npm run lint
npm run build
npm run typecheck:examples
npm run size
npm test
