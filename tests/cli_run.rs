//! `kbench run PROFILE.toml`: phases and ramps, matrix cells, thresholds and exit codes, the
//! max-rate search, and profile errors that name the file and field.

mod common;

use std::time::Duration;

use common::*;

fn profile(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("p.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const BASE: &str = r#"
name = "t"
mode = "e2e"
warmup = "1s"
reporting_interval = "500ms"
thresholds = ["consume.lost == 0", { expr = "e2e.p99 < 10s", phase = "steady" }]

[target]
partitions = 2

[workload]
record_size = 200
consumers = 2

[[phases]]
name = "steady"
duration = "2s"
rate = 500

[[phases]]
name = "up"
ramp = { start = 1000, end = 2000, step = 1000, step_duration = "1s" }
"#;

#[test]
fn a_profile_runs_its_phases_and_ramp_steps_each_with_its_own_results() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), BASE);
    let out = kbench(dir.path(), &["run", &p])
        .timeout(Duration::from_secs(120))
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("thresholds and checks:"), "{text}");
    assert!(text.contains("e2e.p99 < 10s [steady]"), "{text}");
    let s = summary(dir.path());
    assert_eq!(s["command"], "run");
    let names: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["steady", "up-1000", "up-2000"]);
    let rates: Vec<f64> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["target_rate_per_sec"].as_f64().unwrap())
        .collect();
    assert_eq!(rates, [500.0, 1000.0, 2000.0]);
    for (ph, expect) in s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .zip([1000u64, 1000, 2000])
    {
        let n = ph["produce"]["records"].as_u64().unwrap();
        assert!(
            n.abs_diff(expect) <= expect / 20,
            "{}: {n} records, expected about {expect}",
            ph["name"]
        );
        assert!(ph["consume"]["e2e_latency_us"]["count"].as_u64().unwrap() > 0);
    }
    assert!(
        s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "{}",
        s["checks"]
    );
    let csv = std::fs::read_to_string(run_dir(dir.path()).join("timeseries.csv")).unwrap();
    for phase in ["warmup", "steady", "up-1000", "up-2000"] {
        assert!(
            csv.contains(&format!(",{phase},")),
            "no {phase} rows:\n{csv}"
        );
    }
}

#[test]
fn matrix_cells_run_one_after_another_with_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        r#"
name = "m"
mode = "produce"
[workload]
record_size = 100
[[phases]]
name = "go"
duration = "1s"
rate = 300
[matrix]
"producer_props.acks" = ["1", "all"]
"workload.record_size" = [100, 400]
"#,
    );
    kbench(dir.path(), &["run", &p])
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let s = summary(dir.path());
    let phases = s["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 4);
    assert_eq!(phases[0]["name"], "acks=1,record_size=100/go");
    assert_eq!(phases[3]["params"]["producer_props.acks"], "all");
    assert_eq!(phases[3]["params"]["workload.record_size"], "400");
    let bytes_per_record = phases[3]["produce"]["bytes"].as_f64().unwrap()
        / phases[3]["produce"]["records"].as_f64().unwrap();
    assert_eq!(bytes_per_record, 400.0, "the cell's record size applied");
}

#[test]
fn a_broken_threshold_exits_1_and_shows_the_measured_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        &BASE.replace(
            "\"consume.lost == 0\"",
            "\"produce.p50 < 1us\", \"consume.lost == 0\"",
        ),
    );
    let out = kbench(
        dir.path(),
        &["run", &p, "--set", "phases.0.duration=\"1s\""],
    )
    .timeout(Duration::from_secs(120))
    .assert()
    .code(1)
    .get_output()
    .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains("FAIL")
            && l.contains("produce.p50 < 1us [steady]")
            && l.contains("measured ")),
        "{text}"
    );
    let s = summary(dir.path());
    assert!(s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["passed"] == false));
}

#[test]
fn the_max_rate_search_reports_a_knee_bounded_by_the_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    // A rate the thresholds cannot hold above 1500 records/s: produce.records_per_sec < 1500.
    let p = profile(
        dir.path(),
        r#"
name = "search"
mode = "produce"
thresholds = ["produce.records_per_sec < 1500"]
[workload]
record_size = 100
[find_max_rate]
start = 500
max = 100000
step_duration = "1s"
max_trials = 5
precision = 0.2
"#,
    );
    kbench(dir.path(), &["run", &p])
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let s = summary(dir.path());
    let search = &s["max_rate_search"];
    let knee = search["knee_records_per_sec"].as_f64().unwrap();
    assert!((1000.0..=1500.0).contains(&knee), "knee {knee}: {search}");
    assert_eq!(search["trials"][0]["rate_per_sec"], 500.0);
    assert_eq!(
        search["trials"][2]["passed"], false,
        "2000/s breaks the threshold"
    );
}

#[test]
fn profile_errors_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("[workload]\nrecord_sise = 1\n", &["p.toml", "record_sise"]),
        ("thresholds = [\"e2e.p99 < 5\"]\n[[phases]]\nduration = \"1s\"\nrate = 1\n", &["p.toml", "thresholds", "unit"]),
        ("mode = \"e2e\"\n[workload]\nrecord_size = 100\n", &["p.toml", "[[phases]]"]),
        ("[workload]\nrecord_size = 100\n[[phases]]\nrate = 10\n", &["phases[0]: give a duration"]),
        ("[workload]\nrecord_size = 100\n[[phases]]\nduration = \"1s\"\nrate = 1\n[matrix]\n\"workload.record_size\" = [10]\n", &["record_size=10", "36"]),
    ];
    for (text, needles) in cases {
        let p = profile(dir.path(), text);
        let out = kbench(dir.path(), &["run", &p])
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        for n in *needles {
            assert!(
                err.contains(n),
                "profile:\n{text}\nstderr lacks '{n}':\n{err}"
            );
        }
    }
    let out = kbench(dir.path(), &["run", "/no/such/profile.toml"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/profile.toml"));
}

#[test]
fn every_shipped_profile_parses_and_plans() {
    // A plan check without running: a bootstrap that is never reached would fail later, so
    // parse them through the library instead.
    // Profiles for scripts/kafka.sh's cluster name its cluster file: plan them against one of
    // the same shape (nodes 1 to 3), as they would run.
    let dir = tempfile::tempdir().unwrap();
    let cluster_file = fake_cluster_file(dir.path());
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles")).unwrap() {
        let path = entry.unwrap().path();
        let mut tree = kbench::profile::file::read_tree(&path).unwrap();
        if tree
            .get("target")
            .and_then(|t| t.get("cluster_file"))
            .is_some()
        {
            kbench::profile::file::set_path(
                &mut tree,
                "target.cluster_file",
                toml::Value::String(cluster_file.display().to_string()),
            )
            .unwrap();
        }
        let p = kbench::profile::file::typed(tree.clone(), &path)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let args = <kbench::cli::Cli as clap::Parser>::try_parse_from([
            "kbench",
            "run",
            path.to_str().unwrap(),
            "--no-results",
        ])
        .map(|c| match c.command {
            kbench::cli::Command::Run(a) => a,
            _ => unreachable!(),
        })
        .unwrap();
        kbench::profile::plans::Plans::build(&p, &tree, &args)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    }
}

/// A cluster file like scripts/kafka.sh --nodes 3 writes (nodes 1 to 3), for planning only:
/// nothing is signalled or started.
fn fake_cluster_file(dir: &std::path::Path) -> std::path::PathBuf {
    let node = |id: u16| {
        let port = 39300 + 10 * (id - 1);
        serde_json::json!({
            "id": id,
            "pid": std::os::unix::process::parent_id(),
            "bootstrap": format!("127.0.0.1:{port}"),
            "direct": format!("127.0.0.1:{port}"),
            "restart": ["true"],
            "client_proxy": null,
            "peer_proxy": null,
        })
    };
    let file = dir.join("cluster.json");
    let doc = serde_json::json!({
        "schema_version": 1,
        "kind": "apache-kafka",
        "bootstrap": "127.0.0.1:39300,127.0.0.1:39310,127.0.0.1:39320",
        "nodes": [node(1), node(2), node(3)],
    });
    std::fs::write(&file, doc.to_string()).unwrap();
    file
}
