#!/usr/bin/env bash
# Runs Apache Kafka's official Java tools from the jars that scripts/kafka.sh fetches, with a
# quiet log config (warnings to stderr, the tool's own output on stdout). The tools take their
# normal arguments, so they can be pointed at any broker (Apache Kafka or kbench's own).
#
# Environment (optional): KBENCH_JAVA_TOOLS_OPTS  JVM options (default: -Xmx512m)
# plus KBENCH_KAFKA_VERSION and KBENCH_CACHE as in scripts/kafka.sh.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/java-tools.sh TOOL [tool args...]

TOOL is an alias, a fully qualified class name, or a single-file Java program (FILE.java, run
with Java's source launcher on the Kafka classpath):
  producer-perf     org.apache.kafka.tools.ProducerPerformance   (kafka-producer-perf-test)
  consumer-perf     org.apache.kafka.tools.ConsumerPerformance   (kafka-consumer-perf-test)
  e2e-latency       org.apache.kafka.tools.EndToEndLatency       (kafka-e2e-latency)
  topics            org.apache.kafka.tools.TopicCommand          (kafka-topics)
  consumer-groups   org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
  api-versions      org.apache.kafka.tools.BrokerApiVersionsCommand
  get-offsets       org.apache.kafka.tools.GetOffsetShell        (kafka-get-offsets)
  console-producer  org.apache.kafka.tools.ConsoleProducer
  console-consumer  org.apache.kafka.tools.consumer.ConsoleConsumer
  configs           kafka.admin.ConfigCommand                    (kafka-configs)
  storage           kafka.tools.StorageTool                      (kafka-storage)
  classpath         print the classpath and exit

examples:
  scripts/java-tools.sh producer-perf --topic t --num-records 100000 --record-size 100 \
      --throughput -1 --bootstrap-server 127.0.0.1:39092
  scripts/java-tools.sh consumer-perf --bootstrap-server 127.0.0.1:39092 --topic t --num-records 100000
  scripts/java-tools.sh tests/peers/java/GroupConsumer.java --bootstrap-server 127.0.0.1:39092 ...
EOF
}

die() {
  echo "java-tools.sh: error: $*" >&2
  exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

(($#)) || { usage >&2; exit 2; }
tool=$1
shift

case $tool in
  -h | --help | help) usage; exit 0 ;;
  producer-perf) main_class=org.apache.kafka.tools.ProducerPerformance ;;
  consumer-perf) main_class=org.apache.kafka.tools.ConsumerPerformance ;;
  e2e-latency) main_class=org.apache.kafka.tools.EndToEndLatency ;;
  topics) main_class=org.apache.kafka.tools.TopicCommand ;;
  consumer-groups) main_class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  api-versions) main_class=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
  get-offsets) main_class=org.apache.kafka.tools.GetOffsetShell ;;
  console-producer) main_class=org.apache.kafka.tools.ConsoleProducer ;;
  console-consumer) main_class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  configs) main_class=kafka.admin.ConfigCommand ;;
  storage) main_class=kafka.tools.StorageTool ;;
  classpath) main_class="" ;;
  *.java)
    [[ -f $tool ]] || die "no such Java source file: $tool"
    main_class=$tool
    ;;
  *.*) main_class=$tool ;;
  *) usage >&2; die "unknown tool '$tool': use an alias above, a class name, or a .java file" ;;
esac

command -v java >/dev/null 2>&1 \
  || die "java not found on PATH; install a Java 17+ runtime (e.g. apt-get install -y openjdk-17-jre-headless)"

# Fetches on first use (its progress goes to stderr); prints the classpath.
cp=$("$here/kafka.sh" classpath)
if [[ -z $main_class ]]; then
  echo "$cp"
  exit 0
fi
log_config="$(dirname "${cp%/\*}")/config/tools-log4j2.properties"
[[ -f $log_config ]] || die "missing $log_config; run scripts/kafka.sh fetch"

# shellcheck disable=SC2086  # the options are a word list on purpose
exec java ${KBENCH_JAVA_TOOLS_OPTS:--Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true \
  "-Dlog4j2.configurationFile=$log_config" -cp "$cp" "$main_class" "$@"
