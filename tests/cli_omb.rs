//! `kbench run --omb WORKLOAD.yaml [--omb-driver DRIVER.yaml]`: OpenMessaging Benchmark files
//! mapped to profiles. The sample workloads in tests/omb/ (written for kbench in OMB's format)
//! each map to a profile that types and plans; shortened with `--set`, they run on the bundled
//! broker; what cannot map is an error naming the file and the field.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kbench::profile::omb::{omb_files_to_tree, omb_to_tree};
use toml::Value;

const SAMPLES: [&str; 6] = [
    "1-topic-1-partition-1kb.yaml",
    "1-topic-16-partitions-1kb.yaml",
    "1-topic-1-partition-100b.yaml",
    "1-topic-3-partitions-100b-3producers-with-key.yaml",
    "max-rate-1-topic-1-partition-1kb.yaml",
    "backlog-1-topic-1-partition-1kb.yaml",
];
const DRIVER: &str = "kafka-throughput.yaml";

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/omb")
}

/// An OMB checkout's layout in a temp dir: `workloads/` with the samples and `payload/` with
/// payload files of the sizes the samples name (OMB resolves `payload/...` from there).
fn omb_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (w, p) = (dir.path().join("workloads"), dir.path().join("payload"));
    std::fs::create_dir_all(&w).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, w.join(path.file_name().unwrap())).unwrap();
    }
    let bytes: Vec<u8> = (0..1024u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(p.join("payload-1Kb.data"), &bytes).unwrap();
    std::fs::write(p.join("payload-100b.data"), &bytes[..100]).unwrap();
    dir
}

fn workload(dir: &Path, name: &str) -> String {
    dir.join("workloads").join(name).display().to_string()
}

/// `kbench run` arguments as the command line would give them (robust to new flags).
fn run_args(path: &str) -> kbench::cli::RunArgs {
    use clap::Parser;
    match kbench::cli::Cli::try_parse_from(["kbench", "run", path, "--no-results"])
        .unwrap()
        .command
    {
        kbench::cli::Command::Run(a) => a,
        _ => unreachable!(),
    }
}

/// Maps, types and plans a workload file, as `kbench run --omb` does before running.
fn plan(path: &str, driver: Option<&Path>) -> Value {
    let tree =
        omb_files_to_tree(Path::new(path), driver).unwrap_or_else(|e| panic!("{path}: {e:#}"));
    let profile = kbench::profile::file::typed(tree.clone(), Path::new(path))
        .unwrap_or_else(|e| panic!("{path}: {e:#}"));
    kbench::profile::plans::Plans::build(&profile, &tree, &run_args(path))
        .unwrap_or_else(|e| panic!("{path}: {e:#}"));
    tree
}

fn at<'a>(tree: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(tree, |v, k| match v {
        Value::Array(a) => &a[k.parse::<usize>().unwrap()],
        _ => v
            .get(k)
            .unwrap_or_else(|| panic!("no '{path}' in the tree:\n{tree}")),
    })
}

#[test]
fn every_sample_maps_to_a_profile_that_plans_with_and_without_the_driver() {
    let dir = omb_checkout();
    let driver = dir.path().join("workloads").join(DRIVER);
    for name in SAMPLES {
        let path = workload(dir.path(), name);
        plan(&path, None);
        let tree = plan(&path, Some(&driver));
        assert_eq!(at(&tree, "target.replication_factor").as_integer(), Some(3));
        assert_eq!(
            at(&tree, "target.bootstrap_server").as_str(),
            Some("localhost:9092")
        );
        assert_eq!(at(&tree, "producer_props.acks").as_str(), Some("all"));
    }
    // Nothing in tests/omb/ is left out of the list above.
    let mut files: Vec<String> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = SAMPLES
        .iter()
        .chain([&DRIVER])
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn each_sample_maps_field_by_field() {
    let dir = omb_checkout();
    let p = |name| plan(&workload(dir.path(), name), None);

    let t = p("1-topic-1-partition-1kb.yaml");
    assert_eq!(at(&t, "name").as_str(), Some("1-topic-1-partition-1kb"));
    assert_eq!(at(&t, "mode").as_str(), Some("e2e"));
    assert_eq!(at(&t, "warmup").as_str(), Some("1m"));
    assert_eq!(at(&t, "target.partitions").as_integer(), Some(1));
    assert_eq!(at(&t, "workload.keys").as_str(), Some("none"));
    assert_eq!(at(&t, "workload.producers").as_integer(), Some(1));
    assert_eq!(at(&t, "workload.consumers").as_integer(), Some(1));
    assert!(at(&t, "workload.payload_file")
        .as_str()
        .unwrap()
        .ends_with("payload/payload-1Kb.data"));
    assert_eq!(at(&t, "phases.0.name").as_str(), Some("benchmark"));
    assert_eq!(at(&t, "phases.0.rate").as_float(), Some(50_000.0));
    assert_eq!(at(&t, "phases.0.duration").as_str(), Some("15m"));

    let t = p("1-topic-16-partitions-1kb.yaml");
    assert_eq!(at(&t, "target.partitions").as_integer(), Some(16));
    assert_eq!(
        at(&t, "target.topic").as_str(),
        Some("omb-1-topic-16-partitions-1kb")
    );

    let t = p("1-topic-1-partition-100b.yaml");
    assert!(at(&t, "description")
        .as_str()
        .unwrap()
        .contains("136 bytes"));

    let t = p("1-topic-3-partitions-100b-3producers-with-key.yaml");
    assert_eq!(at(&t, "workload.keys").as_str(), Some("round-robin:10000"));
    assert_eq!(at(&t, "workload.record_size").as_integer(), Some(100));
    assert_eq!(
        at(&t, "workload.payload_random_ratio").as_float(),
        Some(0.5)
    );
    assert_eq!(at(&t, "workload.producers").as_integer(), Some(3));
    assert!(t.get("warmup").is_none());

    let t = p("max-rate-1-topic-1-partition-1kb.yaml");
    assert!(t.get("phases").is_none());
    assert_eq!(at(&t, "find_max_rate.start").as_float(), Some(10_000.0));
    assert_eq!(at(&t, "find_max_rate.factor").as_float(), Some(2.0));
    assert_eq!(at(&t, "find_max_rate.step_duration").as_str(), Some("25s"));
    assert_eq!(at(&t, "thresholds.1").as_str(), Some("max_lag <= 1000"));

    let t = p("backlog-1-topic-1-partition-1kb.yaml");
    assert_eq!(at(&t, "phases.0.name").as_str(), Some("build"));
    assert_eq!(at(&t, "phases.0.consumers").as_str(), Some("paused"));
    assert_eq!(at(&t, "phases.0.duration").as_str(), Some("1049s"));
    assert_eq!(at(&t, "phases.1.name").as_str(), Some("drain"));
    assert_eq!(at(&t, "phases.1.duration").as_str(), Some("5m"));
    assert_eq!(at(&t, "phases.1.rate").as_float(), Some(100_000.0));
    assert_eq!(at(&t, "phases.2.name").as_str(), Some("steady"));
    assert_eq!(
        at(&t, "thresholds.0.expr").as_str(),
        Some("max_lag <= 1000")
    );
    assert_eq!(at(&t, "thresholds.0.phase").as_str(), Some("steady"));
}

#[test]
fn unsupported_fields_are_errors_that_name_the_file_and_field() {
    let dir = omb_checkout();
    let base = std::fs::read_to_string(samples_dir().join(SAMPLES[0])).unwrap();
    let src = workload(dir.path(), "edited.yaml");
    for (edit, want) in [
        (base.replace("topics: 1", "topics: 4"), "topics must be 1"),
        (
            base.replace("subscriptionsPerTopic: 1", "subscriptionsPerTopic: 3"),
            "subscriptionsPerTopic is 3",
        ),
        (
            format!("{base}rampAlgorithm: CHOP\n"),
            "unsupported field(s) rampAlgorithm",
        ),
        (
            base.replace("producerRate: 50000", "producerRate: 0")
                .replace("consumerBacklogSizeGB: 0", "consumerBacklogSizeGB: 5"),
            "Cannot probe producer sustainable rate when building backlog",
        ),
    ] {
        let e = format!("{:#}", omb_to_tree(&edit, &src, None).unwrap_err());
        assert!(
            e.contains("edited.yaml") && e.contains(want),
            "want '{want}': {e}"
        );
    }
}

// ---- The command line. These run the bundled broker with durations cut by --set. ----

fn run_omb(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["run", "--omb"];
    all.extend_from_slice(args);
    // Results go to their own folder: `dir` also holds workloads/ and payload/.
    kbench(&dir.join("out"), &all)
        .timeout(Duration::from_secs(180))
        .output()
        .unwrap()
}

fn phase_names(s: &serde_json::Value) -> Vec<String> {
    s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_fixed_rate_workload_runs_with_shortened_durations() {
    let dir = omb_checkout();
    let out = run_omb(
        dir.path(),
        &[
            &workload(dir.path(), "1-topic-1-partition-100b.yaml"),
            "--set",
            "phases.0.duration=2s",
            "--set",
            "phases.0.rate=1000",
            "--set",
            "warmup=1s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&dir.path().join("out"));
    assert_eq!(phase_names(&s), ["benchmark"]);
    let p = &s["phases"][0]["produce"];
    let records = p["records"].as_u64().unwrap();
    assert!(records.abs_diff(2000) <= 100, "{records} records");
    // The payload file is one payload: 100 bytes behind the 36-byte stamp.
    assert_eq!(p["bytes"].as_u64().unwrap(), records * 136);
    assert!(s["phases"][0]["consume"]["records"].as_u64().unwrap() > 0);
}

#[test]
fn a_backlog_workload_builds_with_paused_consumers_then_drains() {
    let dir = omb_checkout();
    let out = run_omb(
        dir.path(),
        &[
            &workload(dir.path(), "backlog-1-topic-1-partition-1kb.yaml"),
            "--set",
            "warmup=1s",
            "--set",
            "reporting_interval=500ms",
            "--set",
            "phases.0.duration=2s",
            "--set",
            "phases.1.duration=2s",
            "--set",
            "phases.2.duration=2s",
            "--set",
            "phases.0.rate=2000",
            "--set",
            "phases.1.rate=2000",
            "--set",
            "phases.2.rate=2000",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // OMB's drained level, checked after the drain.
    assert!(stdout.contains("max_lag <= 1000 [steady]"), "{stdout}");
    let s = summary(&dir.path().join("out"));
    assert_eq!(phase_names(&s), ["build", "drain", "steady"]);
    // A consumed record counts in the phase that produced it: the backlog's records waited
    // (about the build phase's length) before the consumers resumed.
    let build_e2e = s["phases"][0]["consume"]["e2e_latency_us"]["p50"]
        .as_u64()
        .unwrap();
    assert!(build_e2e > 500_000, "build e2e p50 {build_e2e} µs");
    let steady_lag = s["phases"][2]["consume"]["max_lag"].as_u64().unwrap();
    assert!(steady_lag <= 1000, "lag {steady_lag} after the drain");
}

#[test]
fn a_max_rate_workload_searches_with_the_omb_mapped_thresholds() {
    let dir = omb_checkout();
    let out = run_omb(
        dir.path(),
        &[
            &workload(dir.path(), "max-rate-1-topic-1-partition-1kb.yaml"),
            "--set",
            "warmup=500ms",
            "--set",
            "find_max_rate.start=500",
            "--set",
            "find_max_rate.max=1000",
            "--set",
            "find_max_rate.step_duration=2s",
            "--set",
            "find_max_rate.max_trials=2",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trial 2 at 1000 records/s: thresholds held"),
        "{stderr}"
    );
    let s = summary(&dir.path().join("out"));
    assert_eq!(s["max_rate_search"]["knee_records_per_sec"], 1000.0);
}

#[test]
fn a_driver_file_sets_the_client_properties() {
    let dir = omb_checkout();
    // The bundled broker: no bootstrap.servers, one replica.
    let driver = dir.path().join("local-driver.yaml");
    std::fs::write(
        &driver,
        "name: local\ndriverClass: io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver\nreplicationFactor: 1\nproducerConfig: |\n  acks=all\n  linger.ms=7\nconsumerConfig: |\n  enable.auto.commit=false\n",
    )
    .unwrap();
    let out = run_omb(
        dir.path(),
        &[
            &workload(
                dir.path(),
                "1-topic-3-partitions-100b-3producers-with-key.yaml",
            ),
            "--omb-driver",
            &driver.display().to_string(),
            "--set",
            "phases.0.duration=2s",
            "--set",
            "phases.0.rate=600",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&dir.path().join("out"));
    let text = s["config"].to_string();
    assert!(text.contains("linger.ms") && text.contains('7'), "{text}");
    assert_eq!(phase_names(&s), ["benchmark"]);
}

#[test]
fn omb_errors_exit_2_and_name_the_file_and_field() {
    let dir = omb_checkout();
    let bad = dir.path().join("workloads/two-topics.yaml");
    let base = std::fs::read_to_string(samples_dir().join(SAMPLES[0])).unwrap();
    std::fs::write(&bad, base.replace("topics: 1", "topics: 2")).unwrap();
    let out = run_omb(dir.path(), &[&bad.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("two-topics.yaml") && err.contains("topics"),
        "{err}"
    );

    let driver = dir.path().join("pulsar.yaml");
    std::fs::write(
        &driver,
        "name: Pulsar\ndriverClass: io.openmessaging.benchmark.driver.pulsar.PulsarBenchmarkDriver\n",
    )
    .unwrap();
    let out = run_omb(
        dir.path(),
        &[
            &workload(dir.path(), SAMPLES[0]),
            "--omb-driver",
            &driver.display().to_string(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pulsar.yaml") && err.contains("driverClass"),
        "{err}"
    );
}
