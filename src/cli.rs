//! Command-line definitions (clap derive): the raw flags, nothing more.
//!
//! Flag names follow Kafka's `kafka-producer-perf-test` / `kafka-consumer-perf-test` where they
//! exist. This module only declares; `plan` validates and resolves. It must not touch the network.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod run;
pub use run::RunArgs;

const AFTER_HELP: &str = "\
Exit codes:
  0  the run worked and every check passed
  1  the run worked but a check failed (lost records, a threshold)
  2  bad input, or the run could not be done (unreachable broker, missing topic, ...)

Without --bootstrap-server, kbench starts its bundled broker in-process (temp dir, ephemeral
port) and removes it afterwards.";

/// kbench: load generator and latency benchmark for Kafka-protocol systems.
#[derive(Debug, Parser)]
#[command(name = "kbench", version, about, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce records and measure throughput and latency (like kafka-producer-perf-test).
    #[command(after_help = AFTER_HELP)]
    Produce(ProduceArgs),
    /// Consume records and measure throughput (like kafka-consumer-perf-test), plus end-to-end
    /// latency and loss/duplicate/reorder counts when records carry the kbench stamp.
    #[command(after_help = AFTER_HELP)]
    Consume(ConsumeArgs),
    /// Produce and consume together: end-to-end latency under load and per-record verification.
    #[command(after_help = AFTER_HELP)]
    E2e(E2eArgs),
    /// Run a profile (TOML): phases and ramps, a config matrix, thresholds, max-rate search.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// Run the bundled Kafka-compatible broker in the foreground.
    Broker(kbench_broker::cli::BrokerArgs),
    /// Run a replicated bundled cluster of N broker processes on loopback in the foreground.
    Cluster(kbench_broker::cli_cluster::ClusterCmdArgs),
    /// Compare two runs per phase and metric; exit 1 on a significant regression.
    Compare(crate::analyze::compare::CompareArgs),
    /// Merge the result folders of distributed workers into one run (histograms add).
    Merge(crate::analyze::merge::MergeArgs),
    /// Write a self-contained report.html with SVG charts into a run folder.
    Report(crate::report::html::ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) to stdout.
    Completions(crate::completions::CompletionsArgs),
    /// A TCP fault proxy (delay, blackhole, reset, refuse) steered through a control port.
    Proxy(crate::proxy::cli::ProxyArgs),
}

/// Where the load goes and which topic it uses.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Kafka bootstrap servers (HOST:PORT[,HOST:PORT...]). Without it, kbench starts its
    /// bundled broker in-process and removes it afterwards.
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub bootstrap_server: Option<String>,

    /// Topic to use.
    #[arg(long, default_value = "kbench")]
    pub topic: String,

    /// Partitions of the topic when kbench creates it (existing topics keep theirs).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub partitions: i32,

    /// Replication factor of the topic when kbench creates it [default: 1; with
    /// --embedded cluster:N, min(3, N)].
    #[arg(long, value_name = "N")]
    pub replication_factor: Option<i32>,

    /// Create the topic if it is missing. With false, a missing topic is an error.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_topic: bool,

    /// How long to wait for the bootstrap servers before giving up.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub connect_timeout: humantime::Duration,

    /// Without --bootstrap-server, what kbench starts and removes afterwards: `broker` (the
    /// bundled broker in-process), `cluster:N` (a replicated bundled cluster of N node
    /// processes on loopback; faults can target its nodes) or `mock` (librdkafka's mock
    /// cluster, for deterministic tests).
    #[arg(long, value_name = "broker|cluster:N|mock", default_value = "broker", value_parser = EmbeddedKind::parse)]
    pub embedded: EmbeddedKind,

    /// Mock cluster only: inject this round-trip time on every broker (deterministic tests).
    #[arg(long, value_name = "DURATION", hide = true)]
    pub mock_rtt: Option<humantime::Duration>,

    /// Mock cluster only: take the broker down at START for LENGTH (e.g. 2s+1s).
    #[arg(long, value_name = "START+LENGTH", hide = true)]
    pub mock_outage: Option<String>,

    /// Mock cluster only: how many brokers it has (a leader can only move with two or more).
    #[arg(long, value_name = "N", default_value_t = 1, hide = true)]
    pub mock_brokers: i32,

    /// The cluster file of nodes kbench can fault (written by scripts/kafka.sh --nodes 3):
    /// process and link faults act on those nodes.
    #[arg(long, value_name = "PATH")]
    pub cluster_file: Option<PathBuf>,
}

/// Faults on the run's timeline (produce and e2e).
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// A fault step, repeatable: 'at=20s kill leader-of:kbench/0 for=15s'. Actions: kill,
    /// stop, terminate, restart, delay MS[±J], blackhole, reset, refuse, consumer-leave,
    /// consumer-join, consumer-kill, exec; targets: node:N, leader-of:TOPIC/P,
    /// follower-of:TOPIC/P, controller, consumer:I; keys: at, for, repeat=COUNTxEVERY,
    /// side=client|peer, exec='CMD', heal_exec='CMD', loss_expected=true.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,

    /// After the run, read every partition back from the earliest offset with a fresh
    /// consumer and compare with what was acknowledged (on by default when there are faults).
    #[arg(long)]
    pub verify_readback: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddedKind {
    Broker,
    /// A bundled cluster of this many node processes.
    Cluster(i32),
    Mock,
}

impl EmbeddedKind {
    /// `broker`, `mock` or `cluster:N` (N from 1 to 9); the error says what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "broker" => Ok(EmbeddedKind::Broker),
            "mock" => Ok(EmbeddedKind::Mock),
            _ => match s.strip_prefix("cluster:").map(str::parse::<i32>) {
                Some(Ok(n)) if (1..=9).contains(&n) => Ok(EmbeddedKind::Cluster(n)),
                Some(_) => Err(format!(
                    "`{s}`: a bundled cluster has 1 to 9 nodes, e.g. cluster:3"
                )),
                None => Err(format!("`{s}` is not broker, cluster:N or mock")),
            },
        }
    }
}

impl std::fmt::Display for EmbeddedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbeddedKind::Broker => f.write_str("broker"),
            EmbeddedKind::Cluster(n) => write!(f, "cluster:{n}"),
            EmbeddedKind::Mock => f.write_str("mock"),
        }
    }
}

impl serde::Serialize for EmbeddedKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reporting and result files, shared by every command.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// How often to print an interval line and add a time-series row.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub reporting_interval: humantime::Duration,

    /// Directory under which the run's result folder is created.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub output_dir: PathBuf,

    /// Name of the run (part of the result folder name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Do not write result files (console output only).
    #[arg(long)]
    pub no_results: bool,

    /// Serve live figures (rates, percentiles, lag, errors, host) in Prometheus text format
    /// at http://ADDR/metrics while the run goes on.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// How many records, for how long, and the warm-up.
#[derive(Debug, Clone, Args)]
pub struct AmountArgs {
    /// Total records to produce (warm-up records included, as in Kafka's tool).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub num_records: Option<u64>,

    /// Measured duration (after the warm-up), e.g. 60s.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<humantime::Duration>,

    /// The first N records are warm-up: excluded from the summary, kept in the time series.
    #[arg(long, value_name = "N", conflicts_with = "warmup")]
    pub warmup_records: Option<u64>,

    /// Warm-up time before the measured duration.
    #[arg(long, value_name = "DURATION")]
    pub warmup: Option<humantime::Duration>,
}

/// What the producers send and how.
#[derive(Debug, Clone, Args)]
pub struct ProducerArgs {
    #[command(flatten)]
    pub amount: AmountArgs,

    /// Value size in bytes (the 36-byte kbench stamp included).
    #[arg(long, value_name = "BYTES", conflicts_with = "payload_file")]
    pub record_size: Option<String>,

    /// File whose delimited parts are the payloads (each record picks one at random; the kbench
    /// stamp is prepended).
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,

    /// Delimiter of --payload-file.
    #[arg(
        long,
        value_name = "STRING",
        default_value = "\\n",
        requires = "payload_file"
    )]
    pub payload_delimiter: String,

    /// Fraction of each generated payload that is random; the rest is zeros (compressible).
    #[arg(long, value_name = "0..1", default_value_t = 1.0)]
    pub payload_random_ratio: f64,

    /// Records per second in total (open model: latency from the intended send time).
    /// -1 sends as fast as the client accepts (closed model).
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub throughput: f64,

    /// acks: 0, 1 or all.
    #[arg(long, value_name = "0|1|all")]
    pub acks: Option<String>,

    /// batch.size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub batch_size: Option<String>,

    /// linger.ms.
    #[arg(long, value_name = "MS")]
    pub linger_ms: Option<u64>,

    /// compression.type: none, gzip, snappy, lz4 or zstd.
    #[arg(long, value_name = "CODEC")]
    pub compression_type: Option<String>,

    /// Enable the idempotent producer (enable.idempotence=true).
    #[arg(long)]
    pub idempotence: bool,

    /// Any librdkafka producer property, e.g. --producer-props linger.ms=5 acks=all.
    /// Overrides --producer.config and the convenience flags.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1..)]
    pub producer_props: Vec<String>,

    /// A .properties file of producer properties.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,

    /// Key distribution: none, round-robin:N, uniform:N, zipf:N:S or sequential.
    #[arg(long, value_name = "SPEC", default_value = "none")]
    pub keys: String,

    /// Independent producer instances sharing the rate.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub producers: u32,

    /// Seed of the key and payload generators (same seed, same records).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    #[command(flatten)]
    pub transactions: TransactionArgs,
}

/// Transactions, with kafka-producer-perf-test's names: on with `--transactional-id`,
/// `--transaction-duration-ms` or `transactional.id` in the producer properties (or kbench's
/// `--transaction-records` / `--transaction-abort-rate`).
#[derive(Debug, Clone, Default, Args)]
pub struct TransactionArgs {
    /// Produce in transactions with this transactional.id (several producers: ID-0, ID-1, ...).
    /// Default once transactions are on: performance-producer-<uuid>.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,

    /// Commit a transaction after it has been open this long (default 3000 once transactions
    /// are on, unless --transaction-records is given).
    #[arg(long, value_name = "MS")]
    pub transaction_duration_ms: Option<u64>,

    /// Commit every N records instead (with --transaction-duration-ms too: whichever comes
    /// first). Turns transactions on.
    #[arg(long, value_name = "N")]
    pub transaction_records: Option<u64>,

    /// Abort this share of the transactions instead of committing them (0..1), drawn with
    /// --seed. Turns transactions on.
    #[arg(long, value_name = "0..1")]
    pub transaction_abort_rate: Option<f64>,
}

/// Consumer settings shared by `consume` and `e2e`.
#[derive(Debug, Clone, Args)]
pub struct ConsumerArgs {
    /// Consumer group id.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Members of the group, each its own consumer instance.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub consumers: u32,

    /// Any librdkafka consumer property, e.g. --consumer-props fetch.min.bytes=1.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1..)]
    pub consumer_props: Vec<String>,

    /// A .properties file of consumer properties.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,

    /// Stop when no record arrived for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout: u64,

    /// isolation.level of the consumers: read_committed (librdkafka's default, unlike Java's)
    /// sees only committed transactions, read_uncommitted sees aborted ones too.
    #[arg(long, value_name = "LEVEL", value_parser = ["read_committed", "read_uncommitted"])]
    pub isolation_level: Option<String>,
}

/// Distributed load: several kbench processes, each with a share of the plan.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Processes sharing this plan (each takes every Nth producer and consumer, and so its
    /// share of the rate); merge their results with `kbench merge`.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: u32,

    /// This process's share, 0..N-1 (an Indexed Job's completion index, say).
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub worker_index: u32,

    /// When the load starts (RFC 3339, e.g. 2026-11-24T10:00:00Z, or Unix seconds), so that
    /// workers line up; required with --workers > 1. Clocks must be in sync.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    #[command(flatten)]
    pub faults: FaultArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub output: OutputArgs,

    /// Records to consume (all consumers together). Alias: --messages.
    #[arg(long, alias = "messages", value_name = "N")]
    pub num_records: u64,

    /// Start from the latest offset instead of the earliest.
    #[arg(long)]
    pub from_latest: bool,

    /// Print a row per reporting interval instead of one summary row.
    #[arg(long)]
    pub show_detailed_stats: bool,
}

#[derive(Debug, Clone, Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub faults: FaultArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
