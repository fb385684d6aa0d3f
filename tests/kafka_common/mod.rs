//! Helpers of the tests that put Apache Kafka's own code in the loop (issue 5): the broker
//! started by `scripts/kafka.sh`, the Java tools run by `scripts/java-tools.sh`, and kbench's
//! bundled broker run as a child process for the Java client.
//!
//! Prerequisites (Java, Maven) are checked once: without them the tests skip with a loud
//! message, except under `CI`, where a missing prerequisite fails. Every child process is
//! bounded by a deadline and killed when it overstays; the Kafka broker is stopped by a
//! watchdog process when the test binary exits, however it exits.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// The repository root (where `scripts/` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn script(name: &str) -> PathBuf {
    repo().join("scripts").join(name)
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `CI` set to anything but empty, `0` or `false`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn answers(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the Java peers cannot run on this machine, if they cannot.
fn missing_prerequisites() -> Option<String> {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    MISSING
        .get_or_init(|| {
            let mut missing = Vec::new();
            if !answers("java", "-version") {
                missing.push("java (a Java 17+ runtime)");
            }
            if !answers("javac", "-version") {
                missing.push("javac (a JDK: GroupConsumer.java runs from source)");
            }
            if !answers("mvn", "-v") {
                missing.push("mvn (Maven, to fetch the Kafka jars)");
            }
            (!missing.is_empty()).then(|| format!("missing or not working: {}", missing.join(", ")))
        })
        .clone()
}

/// True when the Java peers can run. Otherwise prints a loud SKIPPED notice and returns false,
/// or, under `CI`, fails the test: CI must not pass by skipping the interop tests.
pub fn java_peers_available(test: &str) -> bool {
    let Some(why) = missing_prerequisites() else {
        return true;
    };
    assert!(
        !under_ci(),
        "{test}: {why}. CI is set, so a missing prerequisite fails instead of skipping; \
         scripts/install-test-deps.sh installs Java 17 and Maven"
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, and a skip
    // must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n=============================================================================\n\
         SKIPPED {test}: {why}.\n\
         Install Java 17 and Maven (scripts/install-test-deps.sh) to run it.\n\
         Under CI=true this is a failure, not a skip.\n\
         =============================================================================\n"
    );
    false
}

/// A finished child process.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panics with both streams unless the exit code is 0.
    pub fn success(self, what: &str) -> Finished {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            tail(&self.stderr, 60)
        );
        self
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn drain(stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stream).read_to_string(&mut text);
        text
    })
}

/// A child process, killed if dropped while running.
pub struct Bounded {
    what: String,
    child: Option<std::process::Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Bounded {
    pub fn spawn(cmd: &mut Command, what: &str) -> Bounded {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Bounded {
            what: what.to_string(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Waits until the process exits; past `timeout`, kills it and panics with its output.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("not waited yet");
        let status = loop {
            match child.try_wait().expect("try_wait") {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => break None,
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        if status.is_none() {
            kill(&mut child);
        }
        let stdout = self.stdout.take().map(|h| h.join().unwrap_or_default());
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
        let (stdout, stderr) = (stdout.unwrap_or_default(), stderr.unwrap_or_default());
        match status {
            Some(status) => Finished {
                status,
                stdout,
                stderr,
            },
            None => panic!(
                "{} did not finish within {timeout:?}; killed it.\n--- stdout\n{}\n--- stderr\n{}",
                self.what,
                tail(&stdout, 40),
                tail(&stderr, 60)
            ),
        }
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

/// SIGKILL to the child itself, then reap. The children are the processes that matter: the
/// Java tools exec the JVM, and `kbench broker` is the broker. They stay in our process group,
/// so a Ctrl-C of the test run reaches them too.
fn kill(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` to completion within `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration, what: &str) -> Finished {
    Bounded::spawn(cmd, what).wait(timeout)
}

/// `scripts/java-tools.sh TOOL` with a small heap (the machine is shared).
pub fn java_tool(tool: &str) -> Command {
    let mut c = Command::new(script("java-tools.sh"));
    c.arg(tool)
        .env("KBENCH_JAVA_TOOLS_OPTS", "-Xmx384m")
        .current_dir(repo());
    c
}

/// Downloads the Kafka jars once per test binary (`scripts/kafka.sh fetch`; instant when cached).
pub fn fetch_kafka() {
    static FETCHED: OnceLock<Result<(), String>> = OnceLock::new();
    let fetched = FETCHED.get_or_init(|| {
        let done = run_bounded(
            Command::new(script("kafka.sh")).arg("fetch"),
            Duration::from_secs(300),
            "scripts/kafka.sh fetch",
        );
        if done.status.success() {
            Ok(())
        } else {
            Err(format!(
                "scripts/kafka.sh fetch failed ({}):\n{}",
                done.status,
                tail(&done.stderr, 40)
            ))
        }
    });
    if let Err(e) = fetched {
        panic!("{e}");
    }
}

/// Apache Kafka on loopback, one per test binary.
pub struct Kafka {
    /// PLAINTEXT listener.
    pub bootstrap: String,
    /// SASL_SSL listener (SCRAM-SHA-256/512 and PLAIN).
    pub sasl_ssl_bootstrap: String,
    /// `KBENCH_KAFKA_STATE`: configs, certificates, logs; the log dirs are under `data/`.
    pub state: PathBuf,
    /// What `scripts/kafka.sh env` prints.
    pub env: HashMap<String, String>,
    /// Stops the broker and removes `state` once this test binary has exited.
    _watchdog: std::process::Child,
}

impl Kafka {
    /// The broker shared by the tests of this binary, started on first use; `None` when the
    /// prerequisites are missing outside CI (the caller returns early: skipped).
    pub fn shared(test: &str) -> Option<&'static Kafka> {
        static KAFKA: OnceLock<Result<Kafka, String>> = OnceLock::new();
        if !java_peers_available(test) {
            return None;
        }
        // A failed start is remembered, so the other tests fail fast instead of starting
        // Kafka again each.
        let started = KAFKA.get_or_init(|| {
            std::panic::catch_unwind(Kafka::start).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic while starting Kafka".into())
            })
        });
        match started {
            Ok(k) => Some(k),
            Err(e) => panic!("Apache Kafka did not start: {e}"),
        }
    }

    fn start() -> Kafka {
        fetch_kafka();
        let state = std::env::temp_dir().join(format!("kbench-interop-{}", std::process::id()));
        let kafka_sh = script("kafka.sh");
        // Before the start, so even a half-started broker goes away with this process.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
                   "$2" stop >/dev/null 2>&1; rm -rf "$3""#,
            )
            .arg("kbench-kafka-watchdog")
            .arg(std::process::id().to_string())
            .arg(&kafka_sh)
            .arg(&state)
            .env("KBENCH_KAFKA_STATE", &state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the Kafka watchdog (sh)");

        let (port, sasl_port, controller_port) = (free_port(), free_port(), free_port());
        let started = Instant::now();
        let done = run_bounded(
            Command::new(&kafka_sh)
                .args(["start", "--port", &port.to_string()])
                .args(["--sasl-ssl-port", &sasl_port.to_string()])
                .args(["--controller-port", &controller_port.to_string()])
                .env("KBENCH_KAFKA_STATE", &state)
                .env("KBENCH_KAFKA_HEAP", "-Xms256m -Xmx512m")
                .env("KBENCH_START_TIMEOUT", "120"),
            Duration::from_secs(420),
            "scripts/kafka.sh start",
        )
        .success("scripts/kafka.sh start");
        eprintln!(
            "kafka_common: Apache Kafka answering on 127.0.0.1:{port} (SASL_SSL {sasl_port}) \
             after {:.1} s, state {}",
            started.elapsed().as_secs_f64(),
            state.display()
        );
        assert!(
            done.stdout.contains(&format!("bootstrap=127.0.0.1:{port}")),
            "{}",
            done.stdout
        );

        let env_out = run_bounded(
            Command::new(&kafka_sh)
                .arg("env")
                .env("KBENCH_KAFKA_STATE", &state),
            Duration::from_secs(30),
            "scripts/kafka.sh env",
        )
        .success("scripts/kafka.sh env");
        let env = env_out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(['\'', '"']).to_string()))
            .collect();
        Kafka {
            bootstrap: format!("127.0.0.1:{port}"),
            sasl_ssl_bootstrap: format!("127.0.0.1:{sasl_port}"),
            state,
            env,
            _watchdog: watchdog,
        }
    }

    /// A variable of `scripts/kafka.sh env`.
    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("scripts/kafka.sh env printed no {name}: {:?}", self.env))
    }

    /// Bytes in the log segment files of every partition of `topic`.
    pub fn log_bytes(&self, topic: &str) -> u64 {
        let data = self.state.join("data");
        let mut total = 0;
        for dir in std::fs::read_dir(&data).expect("Kafka log dir").flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            let is_partition = name
                .strip_prefix(topic)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !is_partition {
                continue;
            }
            for f in std::fs::read_dir(dir.path())
                .expect("partition dir")
                .flatten()
            {
                if f.path().extension().is_some_and(|e| e == "log") {
                    total += f.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        total
    }
}

/// The end (high watermark) offset of each partition of `topic`, asked by librdkafka.
pub fn end_offsets(bootstrap: &str, topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("offsets client");
    let timeout = Duration::from_secs(15);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .unwrap_or_else(|e| panic!("metadata of {topic} at {bootstrap}: {e}"));
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("{topic} missing from the metadata of {bootstrap}"));
    assert!(t.error().is_none(), "{topic}: {:?}", t.error());
    (0..t.partitions().len() as i32)
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .unwrap_or_else(|e| panic!("watermarks of {topic}-{p}: {e}"));
            assert_eq!(low, 0, "{topic}-{p} starts at offset 0");
            high
        })
        .collect()
}

/// Collects a stream like `drain`, sending the address of a "listening on ADDR" line.
fn announce(stream: impl Read + Send + 'static, tx: mpsc::Sender<String>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    })
}

/// kbench's bundled broker as a child process (`kbench broker`), killed when dropped.
pub struct BundledBroker {
    pub bootstrap: String,
    /// Killed with its process group when dropped.
    _child: Bounded,
    _data: tempfile::TempDir,
}

impl BundledBroker {
    /// `kbench broker --listen 127.0.0.1:0 --data-dir <temp> EXTRA...`; waits (bounded) for
    /// the "listening on" line to learn the port.
    pub fn start(extra: &[&str]) -> BundledBroker {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("kbench"))
            .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("data"))
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kbench broker");
        // The address is announced on stderr (stdout is for results); either stream will do.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().map(|s| announce(s, tx.clone()));
        let stderr = child.stderr.take().map(|s| announce(s, tx));
        let child = Bounded {
            what: "kbench broker".into(),
            child: Some(child),
            stdout,
            stderr,
        };
        let bootstrap = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let out = child.wait(Duration::from_millis(100));
                panic!(
                    "kbench broker did not say where it listens:\n{}\n{}",
                    out.stdout, out.stderr
                )
            }
        };
        BundledBroker {
            bootstrap,
            _child: child,
            _data: data,
        }
    }

    /// Where the broker keeps its logs.
    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }
}

/// A consumer group as the broker describes it (DescribeGroups, asked by librdkafka).
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub state: String,
    pub protocol: String,
    /// The partitions of each member, decoded from its consumer-protocol assignment.
    pub assignments: Vec<Vec<(String, Vec<i32>)>>,
}

impl GroupSnapshot {
    /// Stable, with `members` members that hold one partition each.
    pub fn one_partition_each(&self, members: usize) -> bool {
        self.state.eq_ignore_ascii_case("stable")
            && self.assignments.len() == members
            && self
                .assignments
                .iter()
                .all(|a| a.iter().map(|(_, p)| p.len()).sum::<usize>() == 1)
    }
}

/// Describes `group` at `bootstrap`; `None` if the broker does not know it (yet).
pub fn describe_group(bootstrap: &str, group: &str) -> Option<GroupSnapshot> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("group client");
    let list = client
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .ok()?;
    let g = list.groups().iter().find(|g| g.name() == group)?;
    Some(GroupSnapshot {
        state: g.state().to_string(),
        protocol: g.protocol().to_string(),
        assignments: g
            .members()
            .iter()
            .map(|m| m.assignment().map(decode_assignment).unwrap_or_default())
            .collect(),
    })
}

/// Decodes a consumer-protocol Assignment (version, [topic, [partition]], user data).
fn decode_assignment(b: &[u8]) -> Vec<(String, Vec<i32>)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        (b.len() >= n).then(|| {
            let (head, rest) = b.split_at(n);
            *b = rest;
            head
        })
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    let mut b = b;
    let mut out = Vec::new();
    let parse = |b: &mut &[u8], out: &mut Vec<(String, Vec<i32>)>| -> Option<()> {
        i16_(b)?; // version
        for _ in 0..i32_(b)?.max(0) {
            let len = i16_(b)?.max(0) as usize;
            let topic = String::from_utf8_lossy(take(b, len)?).into_owned();
            let partitions = (0..i32_(b)?.max(0))
                .map(|_| i32_(b))
                .collect::<Option<Vec<i32>>>()?;
            out.push((topic, partitions));
        }
        Some(())
    };
    let _ = parse(&mut b, &mut out);
    out
}

/// Creates `topic` with `partitions` partitions (replication factor 1) through the admin API.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let results = runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                admin.create_topics(
                    &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                    &options,
                ),
            )
            .await
        })
        .unwrap_or_else(|_| panic!("creating {topic} at {bootstrap} took over 30 s"))
        .unwrap_or_else(|e| panic!("creating {topic} at {bootstrap}: {e}"));
    for r in results {
        if let Err((name, code)) = r {
            panic!("creating {name} at {bootstrap}: {code}");
        }
    }
}

/// The offsets `group` committed for partitions `0..partitions` of `topic` (-1: none).
pub fn committed_offsets(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offsets client");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("committed offsets of {group} at {bootstrap}: {e}"));
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// A proxied 3-node Apache Kafka that `scripts/kafka.sh --nodes 3` started for this test
/// process; a watchdog stops it (and removes its state) once the process exits, however it
/// ends.
pub struct ThreeNodeKafka {
    pub bootstrap: String,
    pub cluster_file: PathBuf,
    _watchdog: std::process::Child,
}

/// Starts a [`ThreeNodeKafka`] whose state dir is named after `label`; panics (with the
/// script's output) when it does not come up in time.
pub fn start_three_node_kafka(label: &str) -> ThreeNodeKafka {
    fetch_kafka();
    let state = std::env::temp_dir().join(format!("kbench-{label}-{}", std::process::id()));
    let kafka_sh = script("kafka.sh");
    // Before the start, so even a half-started cluster goes away with this process.
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
               "$2" --nodes 3 --state "$3" stop >/dev/null 2>&1; rm -rf "$3""#,
        )
        .arg(format!("kbench-{label}-watchdog"))
        .arg(std::process::id().to_string())
        .arg(&kafka_sh)
        .arg(&state)
        .env("KBENCH_STOP_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the cluster watchdog (sh)");
    let base = free_base_port();
    let started = Instant::now();
    let done = run_bounded(
        Command::new(&kafka_sh)
            .args(["--nodes", "3", "--state"])
            .arg(&state)
            .args(["start", "--proxied", "--base-port", &base.to_string()])
            .arg("--kbench")
            .arg(assert_cmd::cargo::cargo_bin("kbench"))
            // C1 only and the serial collector: three JVMs start about twice as fast on
            // 2 shared cores (README), and the tests' few hundred records/s need no peak speed.
            .env(
                "KBENCH_KAFKA_JVM_OPTS",
                "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            )
            .env("KBENCH_START_TIMEOUT", "150")
            .env("KBENCH_STOP_TIMEOUT", "10"),
        Duration::from_secs(420),
        "scripts/kafka.sh --nodes 3 start",
    )
    .success("scripts/kafka.sh --nodes 3 start");
    eprintln!(
        "{label}: 3 nodes answering after {:.1} s (base port {base}, state {})",
        started.elapsed().as_secs_f64(),
        state.display()
    );
    let field = |key: &str| {
        done.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {}", done.stdout))
            .to_string()
    };
    ThreeNodeKafka {
        bootstrap: field("bootstrap="),
        cluster_file: PathBuf::from(field("cluster_file=")),
        _watchdog: watchdog,
    }
}

/// The one [`ThreeNodeKafka`] of this test process, started by the first test that asks (None,
/// after a loud skip, without Java or Maven), with the lock that makes its tests take turns:
/// faults on a shared cluster must not overlap.
pub fn shared_three_node_kafka(
    test: &str,
) -> Option<(&'static ThreeNodeKafka, std::sync::MutexGuard<'static, ()>)> {
    static CLUSTER: OnceLock<Result<ThreeNodeKafka, String>> = OnceLock::new();
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !java_peers_available(test) {
        return None;
    }
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let started = CLUSTER.get_or_init(|| {
        std::panic::catch_unwind(|| start_three_node_kafka("faults")).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic while starting the cluster".into())
        })
    });
    match started {
        Ok(c) => Some((c, turn)),
        Err(e) => panic!("the 3-node Kafka cluster did not start: {e}"),
    }
}

/// A base port whose 3 nodes' 7 ports each (client, replication, controller, two proxies and
/// their control ports) are all free now.
fn free_base_port() -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let base = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(37)) % 200) * 100;
        let all_free = (0..3u16)
            .flat_map(|i| (0..7).map(move |k| base + 10 * i + k))
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free block of ports found in 20000..40000");
}
