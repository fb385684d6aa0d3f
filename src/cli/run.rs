//! The raw flags of `kbench run`: which profile (or OMB workload), the `--set` overrides, and
//! where the results go. `profile` reads and validates the file; this only declares.

use std::path::PathBuf;

/// Flags of `kbench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The profile (TOML); see profiles/ for ready ones.
    #[arg(
        value_name = "PROFILE.toml",
        required_unless_present = "omb",
        conflicts_with = "omb"
    )]
    pub profile: Option<PathBuf>,

    /// Run an OpenMessaging Benchmark workload file instead (its fields mapped to a profile;
    /// what cannot map is an error that names the field).
    #[arg(long, value_name = "WORKLOAD.yaml")]
    pub omb: Option<PathBuf>,

    /// An OMB Kafka driver file whose producer/consumer/common configs apply (with --omb).
    #[arg(long, value_name = "DRIVER.yaml", requires = "omb")]
    pub omb_driver: Option<PathBuf>,

    /// Override a field of the profile, e.g. --set workload.record_size=2048
    /// --set producer_props.linger.ms=5 --set target.bootstrap_server=host:9092.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Directory under which the run's result folder is created.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub output_dir: PathBuf,

    /// Name of the run (default: the profile's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Do not write result files.
    #[arg(long)]
    pub no_results: bool,

    /// Serve live figures in Prometheus text format at http://ADDR/metrics during the run.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl RunArgs {
    /// The file the profile comes from (the TOML profile or the OMB workload).
    pub fn source(&self) -> &std::path::Path {
        self.profile
            .as_deref()
            .or(self.omb.as_deref())
            .unwrap_or(std::path::Path::new("profile"))
    }
}
