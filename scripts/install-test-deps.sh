#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust itself: real Kafka clients that nobody here
# wrote (kcat, kafka-python), and Apache Kafka itself (Java 17 JDK, Maven, and the broker and
# tools jars fetched by scripts/kafka.sh) for tests/kafka_interop.rs and tests/java_peers.rs,
# and Prometheus (promtool) for tests/monitoring_rules.rs.
# Idempotent and quiet when everything is already there.
set -euo pipefail

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
# Headless Chromium renders report.html in tests/cli_report.rs (scripts/check-report-in-chromium.sh).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# A JDK, not only a JRE: the Java peers run tests/peers/java/GroupConsumer.java from source.
command -v javac >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if ((${#need_apt[@]})); then
  echo "installing with apt-get: ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Prometheus and promtool (Debian's `prometheus`): tests/monitoring_rules.rs checks and unit-tests
# monitoring/*.rules.yml and runs a real Prometheus against kbench. Without the recommended node
# exporter; the tests start their own server, the package's service is not needed.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "installing with apt-get: prometheus" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if ! python3 -c 'import kafka' >/dev/null 2>&1; then
  echo "installing kafka-python with pip" >&2
  python3 -m pip install -q 'kafka-python>=2.0.2' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'kafka-python>=2.0.2'
fi

# Apache Kafka's jars into the cache (instant when complete; about 75 MiB when cold).
"$(dirname "$0")/kafka.sh" fetch
