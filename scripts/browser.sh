#!/usr/bin/env bash
# A headless browser for the status page's tests: Debian's chromium and its driver.
#
#   scripts/browser.sh install|status
#
# install: as root with apt, installs chromium and chromium-driver unless they are
# there already; elsewhere it says why it cannot, and the browser tests skip
# (REQUIRE_BROWSER=1 makes them fail instead). status: exit 0 when both are there.
set -euo pipefail

PACKAGES=(chromium chromium-driver)

log() { printf '[browser] %s\n' "$*" >&2; }

installed() {
  local status
  status=$(dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null) || return 1
  [[ $(grep -c '^install ok installed$' <<<"$status") -eq ${#PACKAGES[@]} ]]
}

cmd_install() {
  if installed; then
    return 0
  fi
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    log "cannot install ${PACKAGES[*]}: needs root and apt-get"
    return 1
  fi
  log "installing ${PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${PACKAGES[@]}"
  installed
}

case ${1:-} in
  install) cmd_install ;;
  status) installed ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
