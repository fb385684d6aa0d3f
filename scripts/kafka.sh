#!/usr/bin/env bash
# Real Apache Kafka on loopback, for interop tests and side-by-side comparisons (issue 5).
#
# The broker and the official Java tools are fetched as Maven artifacts (no tarball download),
# cached outside the repository, and run as one KRaft node (broker + controller) on 127.0.0.1;
# with `--nodes 3`, as a cluster of such nodes with faults by node id (scripts/lib/kafka-cluster.sh).
# Run `scripts/kafka.sh help` for the commands. Environment (all optional):
#   KBENCH_KAFKA_VERSION  Apache Kafka release to use (default: the pinned one below)
#   KBENCH_CACHE          cache root; jars go to $KBENCH_CACHE/kafka-<version>/lib
#                         (default: $HOME/.cache/kbench)
#   KBENCH_KAFKA_STATE    state dir: pid, ports, configs, logs, certificates, data
#                         (default: /tmp/kbench-kafka)
#   KBENCH_KAFKA_HEAP     broker JVM heap options (default: -Xms256m -Xmx768m)
#   KBENCH_START_TIMEOUT  seconds to wait for the broker to answer (default: 90)
#   KBENCH_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default: 30)
#   MAVEN_REPO_LOCAL      Maven's local repository (default: ~/.m2/repository)
#   MAVEN_ARGS_EXTRA      extra arguments for mvn (e.g. -o for offline)
set -euo pipefail

# Pinned: the newest release whose kafka_2.13, kafka-tools and kafka-clients are all served by
# the Maven registry this project can reach (kafka-tools 4.4.0 is not).
readonly DEFAULT_KAFKA_VERSION=4.3.1
# Logging backend for the broker and the tools (Kafka 4.x logs through log4j2).
readonly LOG4J_VERSION=2.26.1
# Pinned because Maven's nearest-wins otherwise picks slf4j-api 1.7 (via connect-runtime), which
# does not find log4j-slf4j2-impl and drops every log line with a warning.
readonly SLF4J_VERSION=2.0.17
readonly DEPENDENCY_PLUGIN_VERSION=3.8.1

readonly SCRAM_USER=kbench
readonly SCRAM_PASSWORD=kbench-secret
readonly TLS_PASSWORD=kbench-tls

# Options before the command: --nodes N (1: the single node below; 3..9: a cluster, see
# scripts/lib/kafka-cluster.sh) and --state DIR (instead of KBENCH_KAFKA_STATE).
NODES=1
while (($#)); do
  case $1 in
    --nodes) NODES=${2:?--nodes needs a value}; shift 2 ;;
    --nodes=*) NODES=${1#*=}; shift ;;
    --state) KBENCH_KAFKA_STATE=${2:?--state needs a directory}; shift 2 ;;
    --state=*) KBENCH_KAFKA_STATE=${1#*=}; shift ;;
    *) break ;;
  esac
done
if ! [[ $NODES =~ ^[1-9]$ ]] || ((NODES == 2)); then
  echo "kafka.sh: error: --nodes wants 1 (one node) or 3..9 (a KRaft cluster of combined nodes), got '$NODES'" >&2
  exit 2
fi

KAFKA_VERSION=${KBENCH_KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}
CACHE_ROOT=${KBENCH_CACHE:-${HOME:?HOME is unset; set KBENCH_CACHE to a cache directory}/.cache/kbench}
KAFKA_DIR=$CACHE_ROOT/kafka-$KAFKA_VERSION
LIB_DIR=$KAFKA_DIR/lib
if ((NODES == 1)); then
  STATE_DIR=${KBENCH_KAFKA_STATE:-/tmp/kbench-kafka}
else
  STATE_DIR=${KBENCH_KAFKA_STATE:-/tmp/kbench-kafka-cluster}
fi
START_TIMEOUT=${KBENCH_START_TIMEOUT:-90}
STOP_TIMEOUT=${KBENCH_STOP_TIMEOUT:-30}
KAFKA_HEAP=${KBENCH_KAFKA_HEAP:--Xms256m -Xmx768m}

PID_FILE=$STATE_DIR/kafka.pid
PORTS_FILE=$STATE_DIR/ports
BROKER_LOG=$STATE_DIR/broker.log
DATA_DIR=$STATE_DIR/data
TLS_DIR=$STATE_DIR/tls
LIBRDKAFKA_PROPS=$STATE_DIR/client-librdkafka.properties
LIBRDKAFKA_PLAIN_PROPS=$STATE_DIR/client-librdkafka-plain.properties
JAVA_PROPS=$STATE_DIR/client-java.properties

usage() {
  cat <<EOF
usage: scripts/kafka.sh [--nodes N] [--state DIR] COMMAND [options]

Runs Apache Kafka $KAFKA_VERSION (KRaft, one node) on 127.0.0.1 from jars fetched with Maven.
With --nodes 3 (3..9): a cluster of combined broker+controller nodes, one process each; see
scripts/kafka.sh --nodes 3 help.

commands:
  fetch                 download the broker, the tools and their dependencies into
                        $LIB_DIR (skipped when already complete)
  start [options]       fetch if needed, format a fresh log dir, start the broker in the
                        background, wait until it answers, print bootstrap=127.0.0.1:PORT
                        (a broker already running on the same ports is reused as it is)
      --port N              PLAINTEXT listener port (default 39092)
      --sasl-ssl-port N     also a SASL_SSL listener (SCRAM-SHA-256/512 and PLAIN, user
                            $SCRAM_USER, password $SCRAM_PASSWORD; certificates made with openssl)
      --controller-port N   KRaft controller listener port (default PORT+100)
      --partitions N        partitions of auto-created topics (default 1)
      --config KEY=VALUE    extra broker setting (repeatable)
  stop                  SIGTERM the broker (SIGKILL after ${STOP_TIMEOUT}s), remove its log dir
  status                exit 0 if the broker is running and answers, 1 otherwise
  env                   print shell-sourceable KBENCH_KAFKA_* variables (classpath, bootstrap,
                        client properties files for librdkafka and the Java client)
  classpath             fetch if needed, print the Java classpath of the broker and tools
  help                  this text

state (pid, logs, configs, certificates): $STATE_DIR   (KBENCH_KAFKA_STATE)
jar cache: $LIB_DIR   (KBENCH_CACHE, KBENCH_KAFKA_VERSION)
EOF
}

die() {
  echo "kafka.sh: error: $*" >&2
  exit 2
}

note() {
  echo "kafka.sh: $*" >&2
}

need_java() {
  command -v java >/dev/null 2>&1 \
    || die "java not found on PATH; install a Java 17+ runtime (e.g. apt-get install -y openjdk-17-jre-headless)"
}

# ---------------------------------------------------------------------------------------------
# fetch

lib_complete() {
  [[ -f $LIB_DIR/.complete ]]
}

write_pom() {
  cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Throwaway POM generated by scripts/kafka.sh fetch: resolves Apache Kafka's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kbench.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$DEPENDENCY_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

# Log configs live next to the jars: quiet ones for the tools, INFO to stdout for the broker
# (whose stdout goes to $BROKER_LOG).
write_log_configs() {
  mkdir -p "$KAFKA_DIR/config"
  cat >"$KAFKA_DIR/config/tools-log4j2.properties" <<'EOF'
# Tools: warnings and errors only, on stderr, so stdout carries the tool's own output.
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
# The admin/consumer clients warn about every refused connection while a broker starts.
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = error
EOF
  cat >"$KAFKA_DIR/config/broker-log4j2.properties" <<'EOF'
status = error
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.raft.name = org.apache.kafka.raft
logger.raft.level = warn
logger.controller.name = org.apache.kafka.controller
logger.controller.level = warn
logger.kafkacontroller.name = kafka.controller
logger.kafkacontroller.level = warn
logger.coordinator.name = kafka.coordinator
logger.coordinator.level = warn
logger.logcleaner.name = kafka.log.LogCleaner
logger.logcleaner.level = warn
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = warn
EOF
}

dir_bytes() {
  if [[ -d $1 ]]; then du -sb "$1" | cut -f1; else echo 0; fi
}

human_bytes() {
  awk -v b="$1" 'BEGIN { split("B KiB MiB GiB", u); i = 1; while (b >= 1024 && i < 4) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}

jar_count() {
  local jars=("$LIB_DIR"/*.jar)
  echo "${#jars[@]}"
}

cmd_fetch() {
  write_log_configs
  if lib_complete; then
    note "Kafka $KAFKA_VERSION already fetched: $(jar_count) jars, $(human_bytes "$(dir_bytes "$LIB_DIR")") in $LIB_DIR"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 \
    || die "mvn not found on PATH; install Maven 3.6+ (e.g. apt-get install -y maven)"
  need_java

  local m2_repo=${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}
  local before after started work
  before=$(dir_bytes "$m2_repo")
  started=$(date +%s)
  work=$(mktemp -d "${TMPDIR:-/tmp}/kbench-kafka-fetch.XXXXXX")
  # shellcheck disable=SC2064  # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  write_pom "$work/pom.xml"
  note "fetching Apache Kafka $KAFKA_VERSION (broker, tools, clients, log4j2) through Maven..."
  rm -rf "$LIB_DIR.partial"
  mkdir -p "$LIB_DIR.partial"
  # shellcheck disable=SC2086  # MAVEN_ARGS_EXTRA is a word list on purpose
  if ! mvn -q -B -f "$work/pom.xml" "-Dmaven.repo.local=$m2_repo" ${MAVEN_ARGS_EXTRA:-} \
    "org.apache.maven.plugins:maven-dependency-plugin:$DEPENDENCY_PLUGIN_VERSION:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$LIB_DIR.partial" >"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "Maven could not resolve Apache Kafka $KAFKA_VERSION (log above). Check that the Maven registry is reachable (mvn's settings.xml mirror), or pick a served release with KBENCH_KAFKA_VERSION."
  fi
  local jar
  for jar in kafka_2.13 kafka-server kafka-tools kafka-clients log4j-core; do
    compgen -G "$LIB_DIR.partial/$jar-*.jar" >/dev/null \
      || die "Maven finished but $jar-*.jar is missing from $LIB_DIR.partial"
  done
  rm -rf "$LIB_DIR"
  mv "$LIB_DIR.partial" "$LIB_DIR"
  echo "$KAFKA_VERSION" >"$LIB_DIR/.complete"
  rm -rf "$work"
  trap - EXIT
  after=$(dir_bytes "$m2_repo")
  note "fetched in $(($(date +%s) - started)) s: downloaded $(human_bytes $((after > before ? after - before : 0))) into $m2_repo; lib dir $LIB_DIR has $(jar_count) jars, $(human_bytes "$(dir_bytes "$LIB_DIR")")"
}

classpath() {
  echo "$LIB_DIR/*"
}

ensure_fetched() {
  lib_complete || cmd_fetch
  write_log_configs
}

# ---------------------------------------------------------------------------------------------
# health

# Speaks the Kafka protocol from bash: an ApiVersions v0 request with correlation id 42 must come
# back with a response carrying that id. Cheap enough to poll (no JVM start).
probe() {
  local port=$1 reply
  # shellcheck disable=SC2016  # the inner script expands its own $0
  reply=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x04kbpr" >&3
    head -c 8 <&3 | od -An -tx1
  ' "$port" 2>/dev/null) || return 1
  reply=${reply//[[:space:]]/}
  [[ ${#reply} -eq 16 && ${reply:8} == 0000002a ]]
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # The pid must still be our broker, not a process that reused the number.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

# Reads the ports file of a running broker: PORT SASL_PORT CONTROLLER_PORT (SASL_PORT 0 = none).
read_ports() {
  [[ -f $PORTS_FILE ]] || return 1
  read -r RUN_PORT RUN_SASL_PORT RUN_CONTROLLER_PORT <"$PORTS_FILE"
}

cmd_status() {
  local pid
  if ! pid=$(running_pid); then
    echo "not running (no live pid in $PID_FILE)" >&2
    return 1
  fi
  read_ports || { echo "running as pid $pid but $PORTS_FILE is missing" >&2; return 1; }
  if probe "$RUN_PORT"; then
    echo "running: pid $pid, bootstrap=127.0.0.1:$RUN_PORT$([[ $RUN_SASL_PORT != 0 ]] && echo " sasl_ssl=127.0.0.1:$RUN_SASL_PORT"), controller port $RUN_CONTROLLER_PORT" >&2
    return 0
  fi
  echo "pid $pid is alive but 127.0.0.1:$RUN_PORT does not answer (see $BROKER_LOG)" >&2
  return 1
}

# ---------------------------------------------------------------------------------------------
# start

make_tls() {
  [[ -f $TLS_DIR/broker.p12 && -f $TLS_DIR/ca.pem ]] && return 0
  command -v openssl >/dev/null 2>&1 \
    || die "openssl not found; install it (apt-get install -y openssl) to use --sasl-ssl-port"
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kbench test CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout broker.key -out broker.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile broker.ext -out broker.pem 2>/dev/null
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -passout "pass:$TLS_PASSWORD" -out broker.p12
    rm -f broker.csr broker.ext ca.srl
  ) || die "openssl failed to make the test certificates in $TLS_DIR"
}

write_client_props() {
  local sasl_port=$1
  cat >"$LIBRDKAFKA_PROPS" <<EOF
# librdkafka (kbench, kcat -F): SASL_SSL listener 127.0.0.1:$sasl_port of scripts/kafka.sh
bootstrap.servers=127.0.0.1:$sasl_port
security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-256
sasl.username=$SCRAM_USER
sasl.password=$SCRAM_PASSWORD
ssl.ca.location=$TLS_DIR/ca.pem
EOF
  sed 's/^sasl.mechanisms=.*/sasl.mechanisms=PLAIN/; 1s/.*/# librdkafka < 2.6.1 (SCRAM broken against Kafka 4.x): SASL PLAIN over TLS/' \
    "$LIBRDKAFKA_PROPS" >"$LIBRDKAFKA_PLAIN_PROPS"
  cat >"$JAVA_PROPS" <<EOF
# Java client (tools --command-config / --producer.config): SASL_SSL listener 127.0.0.1:$sasl_port
bootstrap.servers=127.0.0.1:$sasl_port
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SCRAM_USER" password="$SCRAM_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
EOF
}

check_port_arg() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
    die "$1 wants a port number 1-65535, got '$2'"
  fi
}

cmd_start() {
  local port=39092 sasl_port=0 controller_port="" partitions=1
  local -a extra=()
  while (($#)); do
    case $1 in
      --port) port=${2:?--port needs a value}; shift 2 ;;
      --port=*) port=${1#*=}; shift ;;
      --sasl-ssl-port) sasl_port=${2:?--sasl-ssl-port needs a value}; shift 2 ;;
      --sasl-ssl-port=*) sasl_port=${1#*=}; shift ;;
      --controller-port) controller_port=${2:?--controller-port needs a value}; shift 2 ;;
      --controller-port=*) controller_port=${1#*=}; shift ;;
      --partitions) partitions=${2:?--partitions needs a value}; shift 2 ;;
      --partitions=*) partitions=${1#*=}; shift ;;
      --config) extra+=("${2:?--config needs KEY=VALUE}"); shift 2 ;;
      --config=*) extra+=("${1#*=}"); shift ;;
      -h | --help) usage; exit 0 ;;
      *) die "start: unknown option '$1' (see scripts/kafka.sh help)" ;;
    esac
  done
  check_port_arg --port "$port"
  controller_port=${controller_port:-$((port + 100))}
  check_port_arg --controller-port "$controller_port"
  [[ $sasl_port == 0 ]] || check_port_arg --sasl-ssl-port "$sasl_port"
  [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "--partitions wants a positive integer, got '$partitions'"
  local kv
  for kv in "${extra[@]}"; do
    [[ $kv == ?*=* ]] || die "--config wants KEY=VALUE, got '$kv'"
  done

  local pid
  if pid=$(running_pid); then
    read_ports || die "a broker runs as pid $pid but $PORTS_FILE is missing; run scripts/kafka.sh stop"
    if [[ $RUN_PORT != "$port" || $RUN_SASL_PORT != "$sasl_port" ]]; then
      die "a broker already runs (pid $pid, port $RUN_PORT, sasl-ssl port $RUN_SASL_PORT) with other ports than asked; run scripts/kafka.sh stop first, or use another KBENCH_KAFKA_STATE"
    fi
    if probe "$port"; then
      note "already running (pid $pid)"
      echo "bootstrap=127.0.0.1:$port"
      [[ $sasl_port == 0 ]] || echo "sasl_ssl_bootstrap=127.0.0.1:$sasl_port"
      return 0
    fi
    # Alive: maybe still starting, from another invocation. Wait for it like a fresh start.
    note "pid $pid is alive but not answering yet; waiting for it"
    wait_until_ready "$pid" "$port"
    echo "bootstrap=127.0.0.1:$port"
    [[ $sasl_port == 0 ]] || echo "sasl_ssl_bootstrap=127.0.0.1:$sasl_port"
    return 0
  fi

  local p
  for p in "$port" "$controller_port" $([[ $sasl_port == 0 ]] || echo "$sasl_port"); do
    if port_in_use "$p"; then
      die "127.0.0.1:$p is already in use by another process; pick other ports (--port, --sasl-ssl-port, --controller-port)"
    fi
  done

  ensure_fetched
  need_java
  mkdir -p "$STATE_DIR"
  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"

  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  local protocol_map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ $sasl_port != 0 ]]; then
    make_tls
    write_client_props "$sasl_port"
    listeners+=",SASL_SSL://127.0.0.1:$sasl_port"
    advertised+=",SASL_SSL://127.0.0.1:$sasl_port"
    protocol_map+=",SASL_SSL:SASL_SSL"
  fi

  local config=$STATE_DIR/server.properties
  {
    echo "# generated by scripts/kafka.sh start"
    echo "process.roles=broker,controller"
    echo "node.id=1"
    echo "controller.quorum.voters=1@127.0.0.1:$controller_port"
    echo "listeners=$listeners"
    echo "advertised.listeners=$advertised"
    echo "listener.security.protocol.map=$protocol_map"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "log.dirs=$DATA_DIR"
    echo "num.partitions=$partitions"
    echo "auto.create.topics.enable=true"
    echo "offsets.topic.replication.factor=1"
    echo "offsets.topic.num.partitions=1"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "transaction.state.log.num.partitions=1"
    echo "share.coordinator.state.topic.replication.factor=1"
    echo "share.coordinator.state.topic.min.isr=1"
    echo "group.initial.rebalance.delay.ms=0"
    echo "num.network.threads=2"
    echo "num.io.threads=4"
    if [[ $sasl_port != 0 ]]; then
      # PLAIN (same user) too: librdkafka before 2.6.1, e.g. Debian's kcat, fails SCRAM against
      # Kafka 4.x (a nonce bug fixed in librdkafka#4895), but can still test TLS + SASL.
      echo "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
      echo "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SCRAM_USER=\"$SCRAM_PASSWORD\";"
      echo "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
      echo "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
      echo "listener.name.sasl_ssl.ssl.keystore.type=PKCS12"
      echo "listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/broker.p12"
      echo "listener.name.sasl_ssl.ssl.keystore.password=$TLS_PASSWORD"
      echo "listener.name.sasl_ssl.ssl.key.password=$TLS_PASSWORD"
    fi
    for kv in "${extra[@]}"; do echo "$kv"; done
  } >"$config"

  local cp log_opts cluster_id
  cp=$(classpath)
  log_opts="-Dlog4j2.configurationFile=$KAFKA_DIR/config/broker-log4j2.properties"
  # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
  # One that starts with '-' reads as an option to kafka-storage's argument
  # parser (1 in 64 ids), so draw again, as Kafka's own Uuid.randomUuid does.
  cluster_id=-
  while [[ $cluster_id == -* ]]; do
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  done
  local -a format=(format --config "$config" --cluster-id "$cluster_id")
  if [[ $sasl_port != 0 ]]; then
    format+=(--add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]"
      --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]")
  fi
  note "formatting $DATA_DIR (cluster id $cluster_id)"
  if ! java -Xmx256m -XX:TieredStopAtLevel=1 \
    "-Dlog4j2.configurationFile=$KAFKA_DIR/config/tools-log4j2.properties" \
    -cp "$cp" kafka.tools.StorageTool "${format[@]}" >"$STATE_DIR/format.log" 2>&1; then
    cat "$STATE_DIR/format.log" >&2
    die "formatting the log dir failed (output above, config $config)"
  fi

  echo "$port $sasl_port $controller_port" >"$PORTS_FILE"
  note "starting the broker: 127.0.0.1:$port$([[ $sasl_port == 0 ]] || echo ", SASL_SSL 127.0.0.1:$sasl_port"), log $BROKER_LOG"
  # Detached from our stdio: a caller that captures this script's output (a test harness)
  # must see EOF when the script exits, not when the broker does.
  # shellcheck disable=SC2086  # KAFKA_HEAP is a word list on purpose
  nohup java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "$log_opts" -cp "$cp" kafka.Kafka "$config" </dev/null >"$BROKER_LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_until_ready "$pid" "$port"
  echo "bootstrap=127.0.0.1:$port"
  [[ $sasl_port == 0 ]] || echo "sasl_ssl_bootstrap=127.0.0.1:$sasl_port"
}

wait_until_ready() {
  local pid=$1 port=$2 deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$BROKER_LOG" >&2
      rm -f "$PID_FILE"
      die "the broker exited during startup (last lines of $BROKER_LOG above)"
    fi
    if probe "$port"; then
      note "answering on 127.0.0.1:$port after $((SECONDS + START_TIMEOUT - deadline)) s"
      return 0
    fi
    sleep 0.5
  done
  tail -n 40 "$BROKER_LOG" >&2
  die "the broker (pid $pid) did not answer on 127.0.0.1:$port within ${START_TIMEOUT}s (KBENCH_START_TIMEOUT); it is left running for inspection, stop it with scripts/kafka.sh stop"
}

# ---------------------------------------------------------------------------------------------
# stop, env

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    note "stopping pid $pid (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      note "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  else
    note "not running"
  fi
  rm -f "$PID_FILE" "$PORTS_FILE"
  rm -rf "$DATA_DIR"
}

cmd_env() {
  echo "KBENCH_KAFKA_VERSION=$KAFKA_VERSION"
  echo "KBENCH_KAFKA_LIB=$LIB_DIR"
  echo "KBENCH_KAFKA_CLASSPATH=$(classpath)"
  echo "KBENCH_KAFKA_STATE=$STATE_DIR"
  echo "KBENCH_KAFKA_BROKER_LOG=$BROKER_LOG"
  if running_pid >/dev/null && read_ports; then
    echo "KBENCH_KAFKA_BOOTSTRAP=127.0.0.1:$RUN_PORT"
    if [[ $RUN_SASL_PORT != 0 ]]; then
      echo "KBENCH_KAFKA_SASL_SSL_BOOTSTRAP=127.0.0.1:$RUN_SASL_PORT"
    fi
  fi
  if [[ -f $LIBRDKAFKA_PROPS ]]; then
    echo "KBENCH_KAFKA_LIBRDKAFKA_PROPERTIES=$LIBRDKAFKA_PROPS"
    echo "KBENCH_KAFKA_LIBRDKAFKA_PLAIN_PROPERTIES=$LIBRDKAFKA_PLAIN_PROPS"
    echo "KBENCH_KAFKA_JAVA_PROPERTIES=$JAVA_PROPS"
    echo "KBENCH_KAFKA_CA_PEM=$TLS_DIR/ca.pem"
    echo "KBENCH_KAFKA_SCRAM_USER=$SCRAM_USER"
    echo "KBENCH_KAFKA_SCRAM_PASSWORD=$SCRAM_PASSWORD"
  fi
}

# start and stop of one state dir are serialized: parallel tests may all call start.
lock_state() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  command -v flock >/dev/null 2>&1 || return 0
  flock -w 180 9 || die "another scripts/kafka.sh holds $STATE_DIR/.lock for over 180 s"
}

main() {
  if ((NODES > 1)); then
    # shellcheck source=scripts/lib/kafka-cluster.sh
    source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka-cluster.sh"
    cluster_main "$@"
    return
  fi
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    fetch) cmd_fetch ;;
    start) lock_state; cmd_start "$@" ;;
    stop) lock_state; cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    classpath) ensure_fetched; classpath ;;
    help | -h | --help) usage ;;
    "") usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
