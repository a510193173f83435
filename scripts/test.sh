#!/usr/bin/env bash
# The test suite, with a real single-node SLURM cluster when this machine can run one.
#
#   scripts/test.sh [pytest arguments]
#
# Uses the cluster of scripts/slurm/cluster.sh if it is up; else starts it (root
# on Debian: it installs the packages on first use) and stops it again on exit,
# also when tests fail or the run is interrupted. Where no cluster can be started
# (a laptop without root or apt) the SLURM tests are skipped, each saying why;
# REQUIRE_SLURM=1 (set by .ci/run) turns that into an error. The same for a browser
# (scripts/browser.sh, REQUIRE_BROWSER=1).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=scripts/slurm/cluster.sh

if ! "$cluster" status >/dev/null 2>&1; then
  if [[ $EUID -eq 0 ]] && "$cluster" start; then
    trap '"$cluster" stop' EXIT
    trap 'exit 130' INT TERM
  elif [[ ${REQUIRE_SLURM:-0} == 1 ]]; then
    echo "scripts/test.sh: could not start the SLURM cluster, and REQUIRE_SLURM=1" >&2
    exit 1
  else
    echo "scripts/test.sh: no SLURM cluster here; the SLURM tests will be skipped" >&2
  fi
fi
if "$cluster" status >/dev/null 2>&1; then
  eval "$("$cluster" env)"
fi
# The status page's tests drive a headless chromium; without one they skip, each saying
# why, and REQUIRE_BROWSER=1 (set by .ci/run) turns that into an error.
if ! scripts/browser.sh install && [[ ${REQUIRE_BROWSER:-0} == 1 ]]; then
  echo "scripts/test.sh: could not install chromium, and REQUIRE_BROWSER=1" >&2
  exit 1
fi
python -m pytest "$@"
