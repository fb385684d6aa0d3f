#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust itself: real Kafka clients that nobody here
# wrote (kcat, kafka-python). Idempotent and quiet when everything is already there.
set -euo pipefail

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
if ((${#need_apt[@]})); then
  echo "installing with apt-get: ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import kafka' >/dev/null 2>&1; then
  echo "installing kafka-python with pip" >&2
  python3 -m pip install -q 'kafka-python>=2.0.2' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'kafka-python>=2.0.2'
fi
