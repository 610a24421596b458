#!/usr/bin/env bash
# Runs the documented walkthrough against the reference topology and prints each command with
# its real output, so README.md and docs/commands.md can be refreshed from an actual run
# (scripts/readme_walkthrough.py copies the outputs into them).
set -uo pipefail
cd "$(dirname "$0")/.."
export PGTOPO_STATE_DIR="${PGTOPO_STATE_DIR:-$(mktemp -d /tmp/pgtopo-walkthrough-XXXX)}"
export COLUMNS=120
export PATH="$PWD/.venv/bin:$PATH"
WORK=$(mktemp -d /tmp/pgtopo-walk-XXXX)
REPO=$PWD
cp topologies/global-saas.yaml "$WORK/"   # add-subscription edits the file: work on a copy
cp topologies/drills/primary-crash.yaml "$WORK/"
cd "$WORK"
T=global-saas.yaml
run() {
  echo "\$ $*"
  "$@" 2>&1
  echo "[exit $?]"
  echo
}
pgtopo down $T --volumes >/dev/null 2>&1
run pgtopo validate $T
run pgtopo graph $T
run pgtopo up $T
run pgtopo status $T
run pgtopo verify $T
run pgtopo env $T --region eu-west
run pgtopo latency show $T
run pgtopo add-subscription $T --subscriber pg-billing --publisher pg-us --tables orders
run pgtopo partition $T eu-west
sleep 8
run pgtopo status $T
run pgtopo heal $T
run pgtopo kill $T pg-us
run pgtopo failover $T --yes
run pgtopo rejoin $T pg-us
run pgtopo switchover $T --to pg-us --yes
run pgtopo status $T
run pgtopo bench ryw $T --region eu-west --sessions 4 --ops 25
run pgtopo drill run primary-crash.yaml --topology $T --report drill-report
cp drill-report/throughput.png "$REPO/docs/drills/walkthrough-throughput.png" 2>/dev/null
run pgtopo down $T --volumes
