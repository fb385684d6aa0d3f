#!/usr/bin/env bash
# The whole test suite, as the README's quick start runs it: installs what the tests need
# (real Kafka peers: kcat, kafka-python, Apache Kafka's jars from Maven Central), then runs
# every unit and integration test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
exec cargo test --locked --workspace --no-fail-fast "$@"
