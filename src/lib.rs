//! kbench: a load generator and latency benchmark for Kafka-protocol systems.
//!
//! # Layout
//!
//! * `cli`: clap definitions, the raw flags (names follow Kafka's perf tools).
//! * `plan`: flags → a validated, fully resolved plan; every input error is raised here.
//! * `target`: where the load goes (external servers, the bundled broker, librdkafka's mock
//!   cluster) and the topic checks before load starts.
//! * `load`: keys, payloads, the record stamp, the open-loop schedule, producer and consumer
//!   workers on librdkafka.
//! * `measure`: the clock, per-worker recorders, verification sets, the host sampler.
//! * `report`: Kafka-compatible console lines, kbench tables, summary.json, timeseries.csv,
//!   latency.hlog.
//! * `run`: drives a plan from start to exit code, in stages (`prepare`: topic and clients;
//!   `workers`: start and stop the threads; `drive`: the reporter loop and its `Tick` seam for
//!   what acts on the run's clock; `final_report`); the reporter is the only place that
//!   formats during a run.
//! * `profile`: `kbench run PROFILE.toml`: phases, ramps, matrices, thresholds, max-rate search.
//! * the bundled Kafka-compatible broker is its own crate, `kbench-broker` (`crates/broker/`):
//!   it must not depend on the load generator, and the compiler now holds it to that.
//! * `analyze`: reading finished result folders back: compare and merge.
//! * `completions`: `kbench completions SHELL`, generated from `cli` by clap_complete.
//! * `proxy`: kbench's own TCP fault proxy (delay, blackhole, reset, refuse), also run as
//!   `kbench proxy`.

pub mod analyze;
pub mod cli;
pub mod completions;
pub mod fault;
pub mod load;
pub mod measure;
pub mod plan;
pub mod profile;
pub mod proxy;
pub mod report;
pub mod run;
pub mod target;

use std::process::ExitCode;

use anyhow::Result;

/// Runs a parsed command line; `Err` means exit code 2 (bad input or the run could not be done).
pub fn run(cli: cli::Cli) -> Result<ExitCode> {
    let plan = match cli.command {
        cli::Command::Produce(a) => plan::Plan::produce(&a)?.with_bootstrap_from_props()?,
        cli::Command::Consume(a) => plan::Plan::consume(&a)?.with_bootstrap_from_props()?,
        cli::Command::E2e(a) => plan::Plan::e2e(&a)?.with_bootstrap_from_props()?,
        // The broker handles its own signals.
        cli::Command::Broker(a) => return kbench_broker::cli::run(a).map(|_| ExitCode::SUCCESS),
        cli::Command::Cluster(a) => {
            return kbench_broker::cli_cluster::run(a).map(|_| ExitCode::SUCCESS)
        }
        cli::Command::Run(a) => {
            run::install_ctrlc();
            return profile::run(&a);
        }
        cli::Command::Compare(a) => return analyze::compare::run(a),
        cli::Command::Merge(a) => return analyze::merge::run(a),
        cli::Command::Report(a) => return report::html::run(a),
        cli::Command::Completions(a) => return completions::run(a),
        cli::Command::Proxy(a) => return proxy::cli::run(a),
    };
    run::install_ctrlc();
    run::run(plan)
}
