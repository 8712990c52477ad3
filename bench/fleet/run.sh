#!/usr/bin/env bash
# A fleet of runicorn instances behind HAProxy on 127.0.0.1, under open-loop load, in one
# command: installs HAProxy from Debian when it is missing (as root), builds runicorn and
# the load generator (release), then runs bench/fleet/fleet.py. See bench/fleet/README.md.
#
#   bench/fleet/run.sh                          # rolling upgrade and rolling restart under load
#   bench/fleet/run.sh --instances 3 --workers 4 --rate 300 --policy leastconn
#   bench/fleet/run.sh measure --rate 300 --policy random --dist exp --mean-ms 20 --duration 30
#
# Arguments go to fleet.py (`bench/fleet/run.sh --help` lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

log() { printf '%s\n' "$*" >&2; }

case " $* " in
*" --help "* | *" -h "*) exec python3 "$ROOT/bench/fleet/fleet.py" --help ;;
esac

# --- HAProxy, from Debian -------------------------------------------------------------
if ! command -v haproxy >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        log "haproxy is missing and this is not root: apt-get install haproxy, then run again"
        exit 1
    fi
    log "installing haproxy"
    "$ROOT/bench/apt-install.sh" haproxy
fi
command -v python3 >/dev/null || { log "python3 is required"; exit 1; }

# --- runicorn and the load generator ------------------------------------------------------
log "building runicorn and the load generator (cargo build --release)"
timeout 1800 cargo build --release --quiet -p runicorn-cli
timeout 1800 cargo build --release --quiet -p runicorn-tools --example openloop

# fleet.py bounds its own run (--time-limit) and stops every process it started, on Ctrl-C too.
exec python3 "$ROOT/bench/fleet/fleet.py" "$@"
