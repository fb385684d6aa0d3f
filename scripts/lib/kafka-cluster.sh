# shellcheck shell=bash
# Sourced by scripts/kafka.sh for `--nodes N` (3..9): an Apache Kafka KRaft cluster on loopback,
# one JVM per node, each node broker and controller, with a static controller quorum
# (controller.quorum.voters; reference/ha_failover.md §2.4), and commands that put process
# faults on one node by id. Uses kafka.sh's helpers (probe, ensure_fetched, die, note, ...).
#
# Listeners of node I (ports from --base-port B, default 39300; b = B + 10*(I-1)):
#   b+0 CLIENT       clients (advertised as b+3, the client proxy, with --proxied)
#   b+1 REPLICATION  inter-broker traffic: followers fetch from leaders here (advertised as b+4,
#                    the peer proxy, with --proxied)
#   b+2 CONTROLLER   the KRaft quorum; always direct (see "Why controller traffic is direct")
#   b+5, b+6         control ports of the client and the peer proxy (with --proxied)
#
# --proxied puts two `kbench proxy` processes in front of each node: one on the client side,
# one on the peer side. Brokers reach each other through the advertised REPLICATION address,
# so every replica fetch from node I passes node I's peer proxy: a blackhole there cuts node
# I's followers off its data while clients still reach it ("leader isolated from its
# followers"); a blackhole of its client proxy cuts the clients only ("clients cut off").
# The proxies outlive any one kbench run; `stop` stops them too.
#
# Why controller traffic is direct: each proxy sits in front of one node and sees only the
# traffic *to* that node. A node's own requests to the active controller go to the
# controller's port, so no proxy of the node could cut them; routing the quorum through the
# proxies would cut some quorum links and not others, depending on which node is the active
# controller. So a peer-side fault means "nobody can replicate from this node"; to take a
# node away from the controller (fencing, a new leader), kill, pause or terminate it.
#
# Process commands (kill / pause / cont / terminate / restart N) act on the pid that start
# recorded, after checking it is still that node's JVM; never on a group or a negative pid.
# `stop` without a node id stops the whole cluster (SIGCONT, SIGTERM, SIGKILL after
# KBENCH_STOP_TIMEOUT) and its proxies, each by its own pid. SIGSTOP is `pause N`, so that
# `stop N` cannot be read two ways.
#
# The cluster file, $STATE_DIR/cluster.json, rewritten (atomically) by start and restart;
# read by kbench's fault::nodes::NodeSet:
#   {
#     "schema_version": 1,
#     "kind": "apache-kafka",
#     "kafka_version": "4.3.1",
#     "state_dir": "/tmp/kbench-kafka-cluster",
#     "bootstrap": "127.0.0.1:39303,127.0.0.1:39313,127.0.0.1:39323",   // what clients use
#     "nodes": [
#       { "id": 1,
#         "pid": 4242,                          // the node's JVM
#         "bootstrap": "127.0.0.1:39303",       // client address (the client proxy's if proxied)
#         "direct": "127.0.0.1:39300",          // the node's own CLIENT listener
#         "peer": "127.0.0.1:39304",            // advertised REPLICATION address
#         "peer_direct": "127.0.0.1:39301",     // the node's own REPLICATION listener
#         "controller": "127.0.0.1:39302",
#         "log": "/tmp/kbench-kafka-cluster/node1/server.log",
#         "restart": ["/repo/scripts/kafka.sh", "--nodes", "3", "--state", "/tmp/...", "restart", "1"],
#         "client_proxy": {"pid": 4243, "listen": "127.0.0.1:39303", "control": "127.0.0.1:39305"},
#         "peer_proxy": {"pid": 4244, "listen": "127.0.0.1:39304", "control": "127.0.0.1:39306"}
#       }                                       // the proxies are null without --proxied
#     ]
#   }

# Absolute: the restart command in cluster.json may run from any directory.
STATE_DIR=$(realpath -m "$STATE_DIR")
CLUSTER_FILE=$STATE_DIR/cluster.json
CLUSTER_ENV=$STATE_DIR/cluster.env
CLUSTER_HEAP=${KBENCH_KAFKA_HEAP:--Xms128m -Xmx384m}
# Other JVM options of every node (tests may trade peak speed for a faster start, e.g.
# -XX:TieredStopAtLevel=1).
CLUSTER_JVM_OPTS=${KBENCH_KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20}

cluster_usage() {
  cat <<EOF
usage: scripts/kafka.sh --nodes $NODES [--state DIR] COMMAND [options]

Runs Apache Kafka $KAFKA_VERSION as a $NODES-node KRaft cluster on 127.0.0.1 (each node broker
and controller, one JVM each, static quorum), with commands that fault one node by id.

commands:
  start [options]       fetch if needed, format fresh log dirs, start every node (and its
                        proxies), wait until all answer, print bootstrap=... and cluster_file=...
      --base-port N         node I listens on N+10*(I-1)+{0 client, 1 replication,
                            2 controller, 3 client proxy, 4 peer proxy, 5 and 6 their control
                            ports} (default 39300)
      --proxied             a kbench proxy in front of each node's client listener and one in
                            front of its replication listener, advertised instead of them
      --kbench PATH         the kbench binary for --proxied (default: \$KBENCH_BIN, kbench on
                            PATH, then target/{release,debug}/kbench)
      --partitions N        partitions of auto-created topics (default 1)
      --config KEY=VALUE    extra broker setting for every node (repeatable)
  stop                  stop every node and proxy this state dir started (by pid; SIGTERM,
                        SIGKILL after ${STOP_TIMEOUT}s), remove the log dirs and cluster.json
  status                one line per node; exit 0 if every node runs and answers
  env                   print KBENCH_KAFKA_* variables, with the bootstrap list and cluster file
  kill N                SIGKILL node N (waits until it is gone)
  pause N               SIGSTOP node N
  cont N                SIGCONT node N
  terminate N           SIGTERM node N (a controlled shutdown), wait up to ${STOP_TIMEOUT}s
  restart N             stop node N if it runs (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s),
                        start it again on its log dir, wait until it answers, update the pid
                        in cluster.json
  fetch, classpath, help  as without --nodes

Settings for fast failover tests (override with --config): broker.session.timeout.ms=6000,
broker.heartbeat.interval.ms=1000, replica.lag.time.max.ms=5000, internal topics with
replication factor 3 and min.insync.replicas 2, default.replication.factor=3.

state: $STATE_DIR (--state, KBENCH_KAFKA_STATE); heap per node: $CLUSTER_HEAP (KBENCH_KAFKA_HEAP);
other JVM options: $CLUSTER_JVM_OPTS (KBENCH_KAFKA_JVM_OPTS)
EOF
}

# Port K (0..6) of node I.
node_port() {
  echo $((BASE_PORT + 10 * ($1 - 1) + $2))
}

node_dir() {
  echo "$STATE_DIR/node$1"
}

load_cluster_env() {
  [[ -f $CLUSTER_ENV ]] || return 1
  # shellcheck disable=SC1090  # written by cluster_start
  source "$CLUSTER_ENV"
  [[ $CLUSTER_NODES == "$NODES" ]] \
    || die "$STATE_DIR holds a $CLUSTER_NODES-node cluster, not $NODES; use --nodes $CLUSTER_NODES"
}

need_node_id() {
  [[ ${1:-} =~ ^[1-9]$ ]] && (($1 <= NODES)) || die "$2 wants a node id 1..$NODES, got '${1:-}'"
}

# The live pid of node I's JVM, checked against its command line (a reused pid is not ours).
node_pid() {
  local f pid
  f=$(node_dir "$1")/pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
    | grep -qF "kafka.Kafka $(node_dir "$1")/server.properties" || return 1
  echo "$pid"
}

# The live pid of node I's proxy SIDE (client or peer), checked against its command line.
proxy_pid() {
  local f pid
  f=$(node_dir "$1")/$2-proxy.pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "proxy --listen" || return 1
  echo "$pid"
}

# R (running), T (stopped), ... from /proc/PID/stat; empty when gone.
proc_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  echo "${stat%% *}"
}

# Waits up to $2 seconds for pid $1 to be gone (or a zombie); 1 if it is still there.
wait_pid_gone() {
  local deadline=$((SECONDS + $2)) state
  while ((SECONDS < deadline)); do
    state=$(proc_state "$1")
    [[ -z $state || $state == Z ]] && return 0
    sleep 0.1
  done
  state=$(proc_state "$1")
  [[ -z $state || $state == Z ]]
}

json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

find_kbench() {
  local candidate
  for candidate in "${KBENCH_BIN:-}" "$(command -v kbench 2>/dev/null || true)" \
    "$REPO_DIR/target/release/kbench" "$REPO_DIR/target/debug/kbench"; do
    [[ -n $candidate && -x $candidate ]] && { echo "$candidate"; return 0; }
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# start

write_node_config() {
  local i=$1 voters=$2 partitions=$3 client_adv=$4 peer_adv=$5
  shift 5
  local dir rf=3 kv
  dir=$(node_dir "$i")
  {
    echo "# generated by scripts/kafka.sh --nodes $NODES start"
    echo "process.roles=broker,controller"
    echo "node.id=$i"
    echo "controller.quorum.voters=$voters"
    echo "listeners=CLIENT://127.0.0.1:$(node_port "$i" 0),REPLICATION://127.0.0.1:$(node_port "$i" 1),CONTROLLER://127.0.0.1:$(node_port "$i" 2)"
    echo "advertised.listeners=CLIENT://127.0.0.1:$client_adv,REPLICATION://127.0.0.1:$peer_adv"
    echo "listener.security.protocol.map=CLIENT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=REPLICATION"
    echo "log.dirs=$dir/data"
    echo "num.partitions=$partitions"
    echo "default.replication.factor=$rf"
    echo "auto.create.topics.enable=true"
    echo "offsets.topic.replication.factor=$rf"
    echo "offsets.topic.num.partitions=1"
    echo "transaction.state.log.replication.factor=$rf"
    echo "transaction.state.log.min.isr=2"
    echo "transaction.state.log.num.partitions=1"
    echo "share.coordinator.state.topic.replication.factor=$rf"
    echo "share.coordinator.state.topic.min.isr=2"
    echo "group.initial.rebalance.delay.ms=0"
    echo "num.network.threads=2"
    echo "num.io.threads=2"
    echo "num.replica.fetchers=1"
    # Failover within seconds, not Kafka's 9 s fencing and 30 s ISR lag (§2.1).
    echo "broker.heartbeat.interval.ms=1000"
    echo "broker.session.timeout.ms=6000"
    echo "replica.lag.time.max.ms=5000"
    for kv in "$@"; do echo "$kv"; done
  } >"$dir/server.properties"
}

# Saves node I's java argv (one word a line) so that restart starts it exactly the same way.
write_node_argv() {
  local i=$1 dir
  dir=$(node_dir "$i")
  local -a argv
  # shellcheck disable=SC2206  # CLUSTER_HEAP and CLUSTER_JVM_OPTS are word lists on purpose
  argv=(java $CLUSTER_HEAP $CLUSTER_JVM_OPTS -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_DIR/config/broker-log4j2.properties"
    -cp "$(classpath)" kafka.Kafka "$dir/server.properties")
  printf '%s\n' "${argv[@]}" >"$dir/argv"
}

# Starts node I's JVM from its saved argv, detached from our stdio; records the pid.
launch_node() {
  local i=$1 dir
  dir=$(node_dir "$i")
  local -a argv
  mapfile -t argv <"$dir/argv"
  nohup "${argv[@]}" </dev/null >>"$dir/server.log" 2>&1 9>&- &
  echo $! >"$dir/pid"
}

launch_proxy() {
  local i=$1 side=$2 listen=$3 upstream=$4 control=$5 dir
  dir=$(node_dir "$i")
  nohup "$KBENCH" proxy --listen "127.0.0.1:$listen" --upstream "127.0.0.1:$upstream" \
    --control "127.0.0.1:$control" </dev/null >>"$dir/$side-proxy.log" 2>&1 9>&- &
  echo $! >"$dir/$side-proxy.pid"
}

format_nodes() {
  local cluster_id i
  cluster_id=-
  while [[ $cluster_id == -* ]]; do
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  done
  note "formatting $NODES log dirs (cluster id $cluster_id)"
  local -a pids=()
  for ((i = 1; i <= NODES; i++)); do
    java -Xmx256m -XX:TieredStopAtLevel=1 \
      "-Dlog4j2.configurationFile=$KAFKA_DIR/config/tools-log4j2.properties" \
      -cp "$(classpath)" kafka.tools.StorageTool format --config "$(node_dir "$i")/server.properties" \
      --cluster-id "$cluster_id" >"$(node_dir "$i")/format.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 1; i <= NODES; i++)); do
    if ! wait "${pids[$((i - 1))]}"; then
      cat "$(node_dir "$i")/format.log" >&2
      die "formatting node $i failed (output above, config $(node_dir "$i")/server.properties)"
    fi
  done
}

proxy_json() {
  local i=$1 side=$2 port=$3 control=$4 pid
  if [[ $PROXIED != 1 ]]; then
    echo null
    return
  fi
  pid=$(<"$(node_dir "$i")/$side-proxy.pid")
  echo "{\"pid\": $pid, \"listen\": \"127.0.0.1:$port\", \"control\": \"127.0.0.1:$control\"}"
}

# Client address of node I: its proxy's when proxied.
client_addr() {
  if [[ $PROXIED == 1 ]]; then echo "127.0.0.1:$(node_port "$1" 3)"; else echo "127.0.0.1:$(node_port "$1" 0)"; fi
}

peer_addr() {
  if [[ $PROXIED == 1 ]]; then echo "127.0.0.1:$(node_port "$1" 4)"; else echo "127.0.0.1:$(node_port "$1" 1)"; fi
}

bootstrap_list() {
  local i out=""
  for ((i = 1; i <= NODES; i++)); do out+="${out:+,}$(client_addr "$i")"; done
  echo "$out"
}

# Rewrites cluster.json from the pid files (a temp file renamed over it: readers never see
# half a file).
write_cluster_file() {
  local i dir pid sep="" script
  script=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/kafka.sh
  {
    echo "{"
    echo "  \"schema_version\": 1,"
    echo "  \"kind\": \"apache-kafka\","
    echo "  \"kafka_version\": $(json_str "$KAFKA_VERSION"),"
    echo "  \"state_dir\": $(json_str "$STATE_DIR"),"
    echo "  \"bootstrap\": \"$(bootstrap_list)\","
    echo "  \"nodes\": ["
    for ((i = 1; i <= NODES; i++)); do
      dir=$(node_dir "$i")
      pid=$(<"$dir/pid")
      echo "$sep    {"
      echo "      \"id\": $i,"
      echo "      \"pid\": $pid,"
      echo "      \"bootstrap\": \"$(client_addr "$i")\","
      echo "      \"direct\": \"127.0.0.1:$(node_port "$i" 0)\","
      echo "      \"peer\": \"$(peer_addr "$i")\","
      echo "      \"peer_direct\": \"127.0.0.1:$(node_port "$i" 1)\","
      echo "      \"controller\": \"127.0.0.1:$(node_port "$i" 2)\","
      echo "      \"log\": $(json_str "$dir/server.log"),"
      echo "      \"restart\": [$(json_str "$script"), \"--nodes\", \"$NODES\", \"--state\", $(json_str "$STATE_DIR"), \"restart\", \"$i\"],"
      echo "      \"client_proxy\": $(proxy_json "$i" client "$(node_port "$i" 3)" "$(node_port "$i" 5)"),"
      echo "      \"peer_proxy\": $(proxy_json "$i" peer "$(node_port "$i" 4)" "$(node_port "$i" 6)")"
      echo -n "    }"
      sep=","
    done
    echo
    echo "  ]"
    echo "}"
  } >"$CLUSTER_FILE.tmp"
  mv "$CLUSTER_FILE.tmp" "$CLUSTER_FILE"
}

# Waits until node I answers on its own listener (and through its client proxy if proxied).
wait_node_ready() {
  local i=$1 deadline=$((SECONDS + START_TIMEOUT)) pid dir
  dir=$(node_dir "$i")
  pid=$(<"$dir/pid")
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$dir/server.log" >&2
      die "node $i exited during startup (last lines of $dir/server.log above)"
    fi
    local side
    for side in $([[ $PROXIED == 1 ]] && echo client peer); do
      if ! proxy_pid "$i" "$side" >/dev/null; then
        tail -n 20 "$dir/$side-proxy.log" >&2
        die "the $side proxy of node $i exited (its log above); stop the cluster with scripts/kafka.sh --nodes $NODES --state $STATE_DIR stop"
      fi
    done
    if probe "$(node_port "$i" 0)" && { [[ $PROXIED != 1 ]] || probe "$(node_port "$i" 3)"; }; then
      return 0
    fi
    sleep 0.5
  done
  tail -n 40 "$dir/server.log" >&2
  die "node $i (pid $pid) did not answer on 127.0.0.1:$(node_port "$i" 0) within ${START_TIMEOUT}s (KBENCH_START_TIMEOUT); stop the cluster with scripts/kafka.sh --nodes $NODES stop"
}

print_started() {
  echo "bootstrap=$(bootstrap_list)"
  echo "cluster_file=$CLUSTER_FILE"
}

cluster_start() {
  local partitions=1 kv
  BASE_PORT=39300 PROXIED=0 KBENCH=""
  local -a extra=()
  while (($#)); do
    case $1 in
      --base-port) BASE_PORT=${2:?--base-port needs a value}; shift 2 ;;
      --base-port=*) BASE_PORT=${1#*=}; shift ;;
      --proxied) PROXIED=1; shift ;;
      --kbench) KBENCH=${2:?--kbench needs a path}; shift 2 ;;
      --kbench=*) KBENCH=${1#*=}; shift ;;
      --partitions) partitions=${2:?--partitions needs a value}; shift 2 ;;
      --partitions=*) partitions=${1#*=}; shift ;;
      --config) extra+=("${2:?--config needs KEY=VALUE}"); shift 2 ;;
      --config=*) extra+=("${1#*=}"); shift ;;
      -h | --help) cluster_usage; exit 0 ;;
      *) die "start: unknown option '$1' (see scripts/kafka.sh --nodes $NODES help)" ;;
    esac
  done
  check_port_arg --base-port "$BASE_PORT"
  (($(node_port "$NODES" 6) <= 65535)) || die "--base-port $BASE_PORT: node $NODES's ports would pass 65535"
  [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "--partitions wants a positive integer, got '$partitions'"
  for kv in "${extra[@]}"; do
    [[ $kv == ?*=* ]] || die "--config wants KEY=VALUE, got '$kv'"
  done
  if [[ $PROXIED == 1 ]]; then
    if [[ -n $KBENCH ]]; then
      [[ -x $KBENCH ]] || die "--kbench $KBENCH: not an executable file"
    else
      KBENCH=$(find_kbench) || die "--proxied needs the kbench binary: pass --kbench PATH, set KBENCH_BIN, put kbench on PATH, or cargo build"
    fi
  fi

  local i running=0
  for ((i = 1; i <= NODES; i++)); do
    if node_pid "$i" >/dev/null; then running=$((running + 1)); fi
  done
  if ((running > 0)); then
    die "$running node(s) of a cluster already run in $STATE_DIR; run scripts/kafka.sh --nodes $NODES --state $STATE_DIR stop first, or use another --state"
  fi
  local k
  for ((i = 1; i <= NODES; i++)); do
    for k in 0 1 2 $([[ $PROXIED == 1 ]] && echo 3 4 5 6); do
      if port_in_use "$(node_port "$i" "$k")"; then
        die "127.0.0.1:$(node_port "$i" "$k") (node $i) is already in use; pick another --base-port"
      fi
    done
  done

  ensure_fetched
  need_java
  local started=$SECONDS voters=""
  for ((i = 1; i <= NODES; i++)); do voters+="${voters:+,}$i@127.0.0.1:$(node_port "$i" 2)"; done
  mkdir -p "$STATE_DIR"
  {
    echo "CLUSTER_NODES=$NODES"
    echo "BASE_PORT=$BASE_PORT"
    echo "PROXIED=$PROXIED"
  } >"$CLUSTER_ENV"
  for ((i = 1; i <= NODES; i++)); do
    rm -rf "$(node_dir "$i")"
    mkdir -p "$(node_dir "$i")/data"
    local client_adv=$(node_port "$i" 0) peer_adv=$(node_port "$i" 1)
    if [[ $PROXIED == 1 ]]; then client_adv=$(node_port "$i" 3) peer_adv=$(node_port "$i" 4); fi
    write_node_config "$i" "$voters" "$partitions" "$client_adv" "$peer_adv" "${extra[@]}"
    write_node_argv "$i"
  done
  format_nodes
  if [[ $PROXIED == 1 ]]; then
    for ((i = 1; i <= NODES; i++)); do
      launch_proxy "$i" client "$(node_port "$i" 3)" "$(node_port "$i" 0)" "$(node_port "$i" 5)"
      launch_proxy "$i" peer "$(node_port "$i" 4)" "$(node_port "$i" 1)" "$(node_port "$i" 6)"
    done
  fi
  note "starting $NODES nodes$([[ $PROXIED == 1 ]] && echo " behind kbench proxies ($KBENCH)"), logs in $STATE_DIR/node*/server.log"
  for ((i = 1; i <= NODES; i++)); do launch_node "$i"; done
  write_cluster_file
  for ((i = 1; i <= NODES; i++)); do wait_node_ready "$i"; done
  note "all $NODES nodes answer after $((SECONDS - started)) s"
  print_started
}

# ---------------------------------------------------------------------------------------------
# stop, status, env

cluster_stop() {
  load_cluster_env || { note "no cluster in $STATE_DIR"; return 0; }
  local i pid side
  local -a pids=()
  for ((i = 1; i <= NODES; i++)); do
    if pid=$(node_pid "$i"); then
      # A paused node handles SIGTERM only once continued.
      kill -CONT "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  note "stopping ${#pids[@]} node(s) (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s)"
  local deadline=$((SECONDS + STOP_TIMEOUT))
  for pid in "${pids[@]}"; do
    wait_pid_gone "$pid" $((deadline > SECONDS ? deadline - SECONDS : 0)) && continue
    note "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || note "pid $pid survived SIGKILL for 10 s"
  done
  for ((i = 1; i <= NODES; i++)); do
    for side in client peer; do
      if pid=$(proxy_pid "$i" "$side"); then
        kill -TERM "$pid" 2>/dev/null || true
        wait_pid_gone "$pid" 5 || { kill -KILL "$pid" 2>/dev/null || true; }
      fi
      rm -f "$(node_dir "$i")/$side-proxy.pid"
    done
    rm -rf "$(node_dir "$i")/data"
    rm -f "$(node_dir "$i")/pid"
  done
  rm -f "$CLUSTER_FILE" "$CLUSTER_ENV"
}

cluster_status() {
  load_cluster_env || { echo "no cluster in $STATE_DIR" >&2; return 1; }
  local i pid state ok=0 answer side
  for ((i = 1; i <= NODES; i++)); do
    if pid=$(node_pid "$i"); then
      state=$(proc_state "$pid")
      if [[ $state == T ]]; then
        answer="paused (SIGSTOP)"
        ok=1
      elif probe "$(node_port "$i" 0)"; then
        answer="answers"
      else
        answer="does not answer"
        ok=1
      fi
      echo "node $i: pid $pid, $answer, client $(client_addr "$i"), direct 127.0.0.1:$(node_port "$i" 0)" >&2
    else
      echo "node $i: not running" >&2
      ok=1
    fi
    if [[ $PROXIED == 1 ]]; then
      for side in client peer; do
        if pid=$(proxy_pid "$i" "$side"); then
          echo "node $i: $side proxy pid $pid, $(proxy_status "$i" "$side")" >&2
        else
          echo "node $i: $side proxy not running" >&2
          ok=1
        fi
      done
    fi
  done
  return $ok
}

# What node I's SIDE proxy answers to `status` on its control port (port 5 client, 6 peer).
proxy_status() {
  local port
  port=$(node_port "$1" "$([[ $2 == client ]] && echo 5 || echo 6)")
  # shellcheck disable=SC2016  # the inner script expands its own $0
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && echo status >&3 && head -n 1 <&3' "$port" 2>/dev/null \
    || echo "no answer on control port $port"
}

cluster_env() {
  echo "KBENCH_KAFKA_VERSION=$KAFKA_VERSION"
  echo "KBENCH_KAFKA_LIB=$LIB_DIR"
  echo "KBENCH_KAFKA_CLASSPATH=$(classpath)"
  echo "KBENCH_KAFKA_STATE=$STATE_DIR"
  echo "KBENCH_KAFKA_NODES=$NODES"
  if load_cluster_env 2>/dev/null && [[ -f $CLUSTER_FILE ]]; then
    echo "KBENCH_KAFKA_BOOTSTRAP=$(bootstrap_list)"
    echo "KBENCH_KAFKA_CLUSTER_FILE=$CLUSTER_FILE"
  fi
}

# ---------------------------------------------------------------------------------------------
# faults on one node

running_node() {
  need_node_id "${1:-}" "$2"
  load_cluster_env || die "no cluster in $STATE_DIR (start one with scripts/kafka.sh --nodes $NODES start)"
  node_pid "$1" || die "node $1 is not running (no live pid in $(node_dir "$1")/pid)"
}

cluster_signal() {
  local what=$1 id=${2:-} pid
  pid=$(running_node "$id" "$what")
  case $what in
    kill)
      kill -KILL "$pid"
      wait_pid_gone "$pid" 10 || die "node $id (pid $pid) still there 10 s after SIGKILL"
      note "node $id (pid $pid) killed" ;;
    pause) kill -STOP "$pid"; note "node $id (pid $pid) paused (SIGSTOP)" ;;
    cont) kill -CONT "$pid"; note "node $id (pid $pid) continued (SIGCONT)" ;;
    terminate)
      kill -TERM "$pid"
      wait_pid_gone "$pid" "$STOP_TIMEOUT" \
        || die "node $id (pid $pid) still runs ${STOP_TIMEOUT}s after SIGTERM (paused? send cont)"
      note "node $id (pid $pid) terminated" ;;
  esac
}

cluster_restart() {
  local id=${1:-} pid
  need_node_id "$id" restart
  load_cluster_env || die "no cluster in $STATE_DIR (start one with scripts/kafka.sh --nodes $NODES start)"
  [[ -f $(node_dir "$id")/argv ]] || die "node $id was never started from $STATE_DIR"
  if pid=$(node_pid "$id"); then
    note "node $id runs (pid $pid): SIGTERM first"
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_gone "$pid" "$STOP_TIMEOUT"; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_pid_gone "$pid" 10 || die "node $id (pid $pid) survived SIGKILL for 10 s"
    fi
  fi
  ensure_fetched
  local started=$SECONDS
  launch_node "$id"
  write_cluster_file
  wait_node_ready "$id"
  note "node $id restarted (pid $(<"$(node_dir "$id")/pid")), answering after $((SECONDS - started)) s"
}

cluster_main() {
  REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    start) lock_state; cluster_start "$@" ;;
    stop)
      (($# == 0)) || die "stop takes no node id: it stops the whole cluster (SIGSTOP of one node is: pause N)"
      lock_state; cluster_stop ;;
    status) cluster_status ;;
    env) cluster_env ;;
    kill | pause | cont | terminate) cluster_signal "$cmd" "$@" ;;
    restart) lock_state; cluster_restart "$@" ;;
    fetch) cmd_fetch ;;
    classpath) ensure_fetched; classpath ;;
    help | -h | --help) cluster_usage ;;
    "") cluster_usage >&2; exit 2 ;;
    *) cluster_usage >&2; die "unknown command '$cmd'" ;;
  esac
}
