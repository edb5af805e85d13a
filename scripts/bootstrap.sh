#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a fresh Debian 12/13 machine, idempotently:
# Debian packages (only when one is missing: a second run does no network work) and the project's
# virtualenv in .venv (reinstalled only when pyproject.toml changed since the last install).
set -euo pipefail
cd "$(dirname "$0")/.."

# docker-compose (1.29.2 in Debian 12, the same package name in 13): tests/deploy validates
# docker-compose.yml with `docker-compose config`, which needs no Docker engine.
APT_PACKAGES=(influxdb influxdb-client mosquitto mosquitto-clients mbpoll socat python3 python3-venv
              chromium fonts-noto-cjk poppler-utils wrk docker-compose)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: run as root, or install them yourself: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's packages start system services where systemd runs; ours are started by the project itself.
fi

# PostgreSQL for the API's SQL tests: the server on 127.0.0.1:5432 when one answers (as on the CI
# machine); otherwise Debian's, installed and started here, with a password for TCP logins.
if ! (command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: no PostgreSQL on 127.0.0.1:5432; run as root to install one" >&2
        exit 1
    fi
    echo "bootstrap: installing and starting PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed" \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
    version=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster "$version" main start || true
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'jieshui'\""  # tests' default URL
fi

# The interpreter: python3 on PATH if it is >= 3.11 and can make a venv, else Debian's.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=/usr/bin/python3
fi

stamp=.venv/.jieshui-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "bootstrap: creating .venv with $("$PY" --version)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
echo "$want" > "$stamp"
