#!/usr/bin/env bash
# runicorn against its peers, in one command: installs what is missing (wrk, nginx, Apache
# httpd with the prefork MPM, Unicorn and Puma from Debian; Gunicorn from PyPI into a
# virtualenv under target/bench), builds runicorn's hello example, then runs bench/bench.py,
# which measures every server the same way and prints the table. See bench/README.md.
#
#   bench/run.sh                    # the full run (about 12 minutes on 2 CPUs)
#   bench/run.sh --runs 1 --duration 2 --workers 2 --memory-workers 2 --startup-runs 1
#   bench/run.sh --only runicorn nginx
#   bench/run.sh --axum                        # runicorn-axum against axum::serve instead
#   bench/run.sh --only runicorn-axum axum-serve --skip faults
#
# Arguments go to bench.py (`bench/run.sh --help` lists them). Installing needs root (as on
# CI); without root, what is already installed is used and the rest is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
GUNICORN_VERSION=27.0.1

log() { printf '%s\n' "$*" >&2; }

case " $* " in
*" --help "* | *" -h "*) exec python3 "$ROOT/bench/bench.py" --runicorn - --help ;;
esac

# --- Debian packages ------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/apache2/modules/mod_mpm_prefork.so ] || need+=(apache2-bin)
ruby_need=()
command -v unicorn >/dev/null || ruby_need+=(unicorn)
command -v puma >/dev/null || ruby_need+=(puma)
[ ${#ruby_need[@]} -eq 0 ] || ruby_need+=(ruby-rack)

if [ ${#need[@]} -gt 0 ] || [ ${#ruby_need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "not root: cannot install ${need[*]} ${ruby_need[*]}; those servers are skipped"
    else
        if [ ${#need[@]} -gt 0 ]; then
            log "installing ${need[*]}"
            "$ROOT/bench/apt-install.sh" "${need[@]}"
        fi
        if [ ${#ruby_need[@]} -gt 0 ]; then
            log "installing ${ruby_need[*]}"
            "$ROOT/bench/apt-install.sh" "${ruby_need[@]}" \
                || log "unicorn/puma did not install; they are skipped"
        fi
    fi
fi
command -v wrk >/dev/null || { log "wrk is required"; exit 1; }

# --- Gunicorn, in its own virtualenv ----------------------------------------------------
mkdir -p "$OUT"
venv=$OUT/venv
if ! "$venv/bin/python" -c "import gunicorn, sys; sys.exit(gunicorn.__version__ != '$GUNICORN_VERSION')" 2>/dev/null; then
    log "installing gunicorn $GUNICORN_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check "gunicorn==$GUNICORN_VERSION" \
        || log "gunicorn did not install; it is skipped"
fi

# --- runicorn -----------------------------------------------------------------------------
log "building runicorn (cargo build --release --example hello)"
timeout 1800 cargo build --release --quiet --example hello
# The axum section's app (runicorn-axum and axum-serve), only when it runs: it compiles
# axum and Tokio's multi-thread runtime.
axum=()
case " $* " in
*" --axum "* | *" runicorn-axum "* | *" axum-serve "*)
    log "building the axum app (cargo build --release --example axum_bench --features tower)"
    timeout 1800 cargo build --release --quiet --example axum_bench --features tower
    axum=(--axum-bench "$ROOT/target/release/examples/axum_bench")
    ;;
esac

# bench.py bounds its own run (--time-limit) and stops every server it started, on Ctrl-C too.
exec python3 "$ROOT/bench/bench.py" \
    --runicorn "$ROOT/target/release/examples/hello" \
    --python "$venv/bin/python" \
    "${axum[@]}" \
    --out "$OUT" "$@"
