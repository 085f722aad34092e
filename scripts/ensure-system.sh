#!/usr/bin/env bash
# Install and start what `make demo` and `make test` need on a Debian machine:
# python3-venv, Samba (AD DC), BIND9, and a RabbitMQ answering on 127.0.0.1:5672
# with its management API. Installs only what is missing; as root it uses
# apt-get, otherwise it says exactly what to run.
set -euo pipefail

say() { printf '%s\n' "ensure-system: $*" >&2; }

missing_packages=()
need() {  # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || missing_packages+=("$2")
}
need samba samba
need samba-tool samba
need ldbmodify ldb-tools
need wbinfo winbind
need named bind9
need named-checkconf bind9-utils
need tsig-keygen bind9-utils
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing_packages+=(python3-venv)

rabbit_answers() { (exec 3<>/dev/tcp/127.0.0.1/5672) >/dev/null 2>&1; }
if ! rabbit_answers && ! command -v rabbitmq-server >/dev/null 2>&1; then
  missing_packages+=(rabbitmq-server)
fi

if ((${#missing_packages[@]})); then
  # shellcheck disable=SC2207
  missing_packages=($(printf '%s\n' "${missing_packages[@]}" | sort -u))
  if [[ $(id -u) -ne 0 ]]; then
    say "missing: ${missing_packages[*]}"
    say "run: sudo apt-get install -y ${missing_packages[*]}"
    exit 1
  fi
  say "installing ${missing_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing_packages[@]}" >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "${missing_packages[@]}" >/dev/null
  }
fi

if ! rabbit_answers; then
  say "starting rabbitmq-server"
  if [[ $(id -u) -ne 0 ]]; then
    say "RabbitMQ is not answering on 127.0.0.1:5672; start it: sudo rabbitmq-server -detached"
    exit 1
  fi
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    rabbitmqctl -q await_startup >/dev/null 2>&1 && break
    sleep 1
  done
  rabbit_answers || { say "RabbitMQ did not start"; exit 1; }
fi

if ! curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
  if command -v rabbitmq-plugins >/dev/null 2>&1; then
    say "enabling the RabbitMQ management API (per-test vhosts are created through it)"
    rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do
      curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1 && break
      sleep 1
    done
  fi
fi

# The ledger is tested against PostgreSQL as well when it runs here.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! (exec 3<>/dev/tcp/127.0.0.1/5432) >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
  fi
fi
say "ready"
