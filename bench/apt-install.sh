#!/usr/bin/env bash
# Installs Debian packages for the benchmarks and the tests, as root:
#
#   bench/apt-install.sh haproxy prometheus
#
# No packaged service starts on install (nginx, HAProxy, Prometheus): the benchmarks and the
# tests start their own servers on their own ports, and a daemon started by the package would
# outlive them. policy-rc.d(8) says no while apt runs, unless the machine has its own policy.
# The package lists are fetched only when the install fails without them (a fresh machine).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' > $policy
    chmod 755 $policy
    made_policy=1
fi
trap '[ -z "$made_policy" ] || rm -f $policy' EXIT
install() { timeout 900 apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
install "$@" || { timeout 600 apt-get update -qq && install "$@"; }
