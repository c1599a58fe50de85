#!/usr/bin/env bash
# Runs the jest projects and ends with one plain summary line over all of them:
#   tests: N passed, N failed, N skipped
# usage: scripts/test.sh [unit] [e2e] [soak]     (default: unit e2e; e2e and soak need root and build/bin)
set -uo pipefail
cd "$(dirname "$0")/.."

projects=("$@")
[ "${#projects[@]}" -gt 0 ] || projects=(unit e2e)

mkdir -p build/test
rc=0
reports=()
for p in "${projects[@]}"; do
  args=(--selectProjects "$p" --ci --passWithNoTests --json --outputFile="build/test/$p.json")
  case "$p" in
    unit) limit=1200 ;;
    e2e | soak)
      if [ "$(id -u)" != 0 ]; then
        echo "test: the e2e tests build network namespaces and need root: run 'sudo make test-e2e'" >&2
        rc=1
        continue
      fi
      if [ ! -x build/bin/tscni ]; then
        echo "test: build/bin/tscni is missing: run 'make build' first" >&2
        rc=1
        continue
      fi
      # e2e tests drive the built executables from here
      export TSCNI_BIN_DIR="$PWD/build/bin"
      args+=(--runInBand)
      limit=3600
      [ "$p" = soak ] && limit=10800
      ;;
    *) echo "test: unknown jest project '$p' (unit|e2e|soak)" >&2; exit 2 ;;
  esac
  rm -f "build/test/$p.json"
  echo "test: jest $p"
  # bounded, so a hung test cannot eat CI's whole budget
  timeout -k 30 "$limit" node_modules/.bin/jest "${args[@]}" </dev/null
  r=$?
  [ "$r" = 124 ] && echo "test: jest $p timed out after ${limit}s" >&2
  [ "$r" = 0 ] || rc=1
  reports+=("build/test/$p.json")
done

node -e '
const fs = require("fs");
let passed = 0, failed = 0, skipped = 0;
for (const f of process.argv.slice(1)) {
  let r;
  try { r = JSON.parse(fs.readFileSync(f, "utf8")); } catch { failed++; console.log(`${f}: no report (jest crashed?)`); continue; }
  passed += r.numPassedTests;
  failed += r.numFailedTests + (r.numRuntimeErrorTestSuites || 0);
  skipped += r.numPendingTests + r.numTodoTests;
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
' "${reports[@]}"
exit "$rc"
