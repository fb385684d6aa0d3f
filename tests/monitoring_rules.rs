//! The Prometheus alerting rules in monitoring/: promtool accepts them and their unit tests
//! pass; every alert has a unit test where it fires and one where it stays quiet, and those
//! tests do fail when the alert's expression is broken; and a real Prometheus server (1 s
//! scrapes, the shipped rules with `for:` cut to 1 s) scraping a real kbench run fires the
//! kbench-live alerts when the broker under it dies, and scraping a real broker finds every
//! `kbroker_*` series the broker rules use and fires KbenchBrokerDown when it is killed.

mod broker_support;
mod monitoring_support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use broker_support::{free_port, kbench_bin, spawn_broker_process, KillOnDrop};
use monitoring_support::*;

const RULES: [&str; 2] = ["kbench-broker.rules.yml", "kbench-live.rules.yml"];

/// `monitoring/tests/X.test.yml` for `X.rules.yml`.
fn unit_tests_of(rules: &str) -> PathBuf {
    monitoring_dir()
        .join("tests")
        .join(rules.replace(".rules.yml", ".test.yml"))
}

fn alert_names(rules: &Path) -> BTreeSet<String> {
    let mut doc = read_yaml(rules);
    rules_mut(&mut doc)
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect()
}

#[test]
fn promtool_accepts_every_rules_file() {
    if !require_prometheus() {
        return;
    }
    for name in RULES {
        let o = promtool(&[
            OsStr::new("check"),
            OsStr::new("rules"),
            rules_file(name).as_os_str(),
        ]);
        assert!(
            o.status.success(),
            "promtool check rules {name}:\n{}",
            text(&o)
        );
        assert!(text(&o).contains("SUCCESS"), "{}", text(&o));
    }
}

#[test]
fn the_promtool_unit_tests_pass() {
    if !require_prometheus() {
        return;
    }
    for name in RULES {
        let tests = unit_tests_of(name);
        let o = promtool(&[OsStr::new("test"), OsStr::new("rules"), tests.as_os_str()]);
        assert!(
            o.status.success(),
            "promtool test rules {}:\n{}",
            tests.display(),
            text(&o)
        );
    }
}

/// Per alert name: (has an evaluation expecting it to fire, has one expecting silence).
fn expectations(tests: &Path) -> BTreeMap<String, (bool, bool)> {
    let doc = read_yaml(tests);
    let mut seen = BTreeMap::<String, (bool, bool)>::new();
    for t in doc["tests"].as_sequence().expect("tests") {
        for eval in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = eval["alertname"].as_str().expect("alertname").to_string();
            let fires = eval["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty());
            let e = seen.entry(name).or_default();
            if fires {
                e.0 = true;
            } else {
                e.1 = true;
            }
        }
    }
    seen
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires_and_one_where_it_stays_quiet() {
    for name in RULES {
        let alerts = alert_names(&rules_file(name));
        let seen = expectations(&unit_tests_of(name));
        // A typo in a test's alertname would pass promtool silently (no such alert, none fire).
        let unknown: Vec<_> = seen.keys().filter(|n| !alerts.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "{name}: tests name unknown alerts {unknown:?}"
        );
        for alert in &alerts {
            let (fires, quiet) = seen.get(alert).copied().unwrap_or_default();
            assert!(fires, "{name}: no unit test where {alert} fires");
            assert!(quiet, "{name}: no unit test where {alert} stays quiet");
        }
    }
}

/// Runs the unit tests of `rules` against a copy whose every alert has `expr` (and no `for:`
/// when `drop_for`); returns promtool's output, which must be a failure.
fn unit_tests_with_every_expr(rules: &str, expr: &str, drop_for: bool) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut doc = read_yaml(&rules_file(rules));
    for rule in rules_mut(&mut doc) {
        rule["expr"] = serde_norway::Value::String(expr.into());
        if drop_for {
            if let Some(m) = rule.as_mapping_mut() {
                m.remove("for");
            }
        }
    }
    // The same layout as monitoring/: the unit tests name `../X.rules.yml`.
    write_yaml(&dir.path().join(rules), &doc);
    std::fs::create_dir(dir.path().join("tests")).expect("mkdir");
    let tests = dir
        .path()
        .join("tests")
        .join(unit_tests_of(rules).file_name().expect("name"));
    std::fs::copy(unit_tests_of(rules), &tests).expect("copy unit tests");
    let o = promtool(&[OsStr::new("test"), OsStr::new("rules"), tests.as_os_str()]);
    assert!(
        !o.status.success(),
        "{rules} with every expr `{expr}`: the unit tests still pass"
    );
    text(&o)
}

/// The alert names of promtool failures whose expected list was empty (`quiet`) or not.
fn failed_alerts(output: &str, quiet: bool) -> BTreeSet<String> {
    let re = regex::Regex::new(r"alertname: (\w+), time: [^,]*, \s*exp:(\[\])?").expect("regex");
    re.captures_iter(output)
        .filter(|c| c.get(2).is_some() == quiet)
        .map(|c| c[1].to_string())
        .collect()
}

#[test]
fn the_unit_tests_fail_when_an_alert_never_fires_or_always_fires() {
    if !require_prometheus() {
        return;
    }
    for name in RULES {
        let alerts = alert_names(&rules_file(name));
        // Never fires: each alert's firing expectations must fail.
        let out = unit_tests_with_every_expr(name, "vector(0) > 0", false);
        assert_eq!(
            failed_alerts(&out, false),
            alerts,
            "never-firing {name}:\n{out}"
        );
        // Always fires, at once: each alert's quiet expectations must fail.
        let out = unit_tests_with_every_expr(name, "vector(1)", true);
        assert_eq!(
            failed_alerts(&out, true),
            alerts,
            "always-firing {name}:\n{out}"
        );
    }
}

/// `kbench produce` against `bootstrap` with live metrics on `metrics_port`, until killed.
fn spawn_produce(bootstrap: &str, metrics_port: u16) -> KillOnDrop {
    let child = Command::new(kbench_bin())
        .env("KBENCH_NO_PROGRESS", "1")
        .args([
            "produce",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            "monitored",
        ])
        .args([
            "--record-size",
            "100",
            "--throughput",
            "200",
            "--duration",
            "60s",
        ])
        .args(["--reporting-interval", "1s", "--no-results"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        // Records fail a second after the broker is gone, not after librdkafka's 5 minutes.
        .args(["--producer-props", "message.timeout.ms=1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kbench produce");
    KillOnDrop(child)
}

#[test]
fn a_real_prometheus_scrapes_a_run_and_fires_produce_errors_when_the_broker_dies() {
    if !require_prometheus() {
        return;
    }
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let broker = KillOnDrop(spawn_broker_process(port, data.path(), &[]));
    let metrics_port = free_port();
    let _produce = spawn_produce(&format!("127.0.0.1:{port}"), metrics_port);
    // The shipped rules, with `for:` cut to 1s so the test takes seconds, not minutes.
    let rules = fast_rules(&rules_file("kbench-live.rules.yml"), data.path(), "1s");
    let target = format!("127.0.0.1:{metrics_port}");
    let prom = Prometheus::start(&[ScrapeJob::new("kbench", [&target])], &[rules]);

    // The scrape works and carries the run's real figures.
    let within = Duration::from_secs(10);
    prom.wait_for_query("up{job=\"kbench\"} == 1", 1, within);
    let acked = prom.wait_for_query("kbench_produce_records > 0", 1, within);
    assert_eq!(acked[0]["metric"]["instance"], target.as_str());
    // While the broker answers, rules evaluated on flowing data are quiet.
    prom.wait_for_query("kbench_produce_records_per_sec > 0", 1, within);
    let flowing = SystemTime::now();
    for name in ["KbenchLiveRunStalled", "KbenchLiveProduceErrors"] {
        let rule = prom.wait_for_evaluation(name, flowing, within);
        assert_eq!(rule["health"], "ok", "{rule}");
        assert_eq!(rule["state"], "inactive", "{rule}");
    }

    drop(broker); // SIGKILL to the broker's pid, reaped
    let alert = prom.wait_for_alert("KbenchLiveProduceErrors", Duration::from_secs(15));
    assert_eq!(alert["labels"]["instance"], target.as_str(), "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("kbench on {target} gets produce errors"),
        "{alert}"
    );
    prom.wait_for_alert("KbenchLiveRunStalled", Duration::from_secs(10));
    let errors = prom.query("kbench_produce_errors > 0");
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn fast_rules_shorten_every_for_and_keep_the_expressions() {
    if !require_prometheus() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for name in RULES {
        let fast = fast_rules(&rules_file(name), dir.path(), "1s");
        let o = promtool(&[OsStr::new("check"), OsStr::new("rules"), fast.as_os_str()]);
        assert!(o.status.success(), "{}", text(&o));
        let (mut orig, mut copy) = (read_yaml(&rules_file(name)), read_yaml(&fast));
        let pairs = rules_mut(&mut orig).zip(rules_mut(&mut copy));
        for (a, b) in pairs {
            assert_eq!(a["expr"], b["expr"]);
            let expected = a.get("for").map(|_| serde_norway::Value::from("1s"));
            assert_eq!(b.get("for").cloned(), expected, "{b:?}");
        }
    }
}

/// The `kbroker_*` names the rules file uses (as written: `_total`, `_bucket` included).
fn broker_metric_names(rules: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(rules).expect("rules");
    let re = regex::Regex::new(r"\bkbroker_[a-z_]+").expect("regex");
    re.find_iter(&text)
        .map(|m| m.as_str().to_string())
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_a_broker_with_every_metric_the_rules_use_and_sees_it_die() {
    if !require_prometheus() {
        return;
    }
    let data = tempfile::tempdir().expect("temp dir");
    let (port, metrics_port) = (free_port(), free_port());
    let target = format!("127.0.0.1:{metrics_port}");
    let broker = KillOnDrop(spawn_broker_process(
        port,
        &data.path().join("broker"),
        &["--metrics-listen", &target],
    ));
    // A short e2e run with a group: request histograms and committed lag exist afterwards.
    assert_cmd::Command::new(kbench_bin())
        .env("KBENCH_NO_PROGRESS", "1")
        .args(["e2e", "--bootstrap-server", &format!("127.0.0.1:{port}")])
        .args([
            "--topic",
            "watched",
            "--group",
            "watchers",
            "--record-size",
            "100",
        ])
        .args(["--throughput", "200", "--duration", "1s", "--no-results"])
        .timeout(Duration::from_secs(30))
        .assert()
        .success();
    let rules = rules_file("kbench-broker.rules.yml");
    let fast = fast_rules(&rules, data.path(), "1s");
    let prom = Prometheus::start(&[ScrapeJob::new("kbench-broker", [&target])], &[fast]);

    let within = Duration::from_secs(10);
    prom.wait_for_query("up{job=\"kbench-broker\"} == 1", 1, within);
    for name in broker_metric_names(&rules) {
        prom.wait_for_query(&format!("{name}{{job=\"kbench-broker\"}}"), 1, within);
    }
    let scraped = SystemTime::now();
    let alerts = alert_names(&rules);
    for name in &alerts {
        let rule = prom.wait_for_evaluation(name, scraped, within);
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    let down = prom.rule("KbenchBrokerDown").expect("rule");
    assert_eq!(down["state"], "inactive", "{down}");

    drop(broker); // SIGKILL to the broker's pid, reaped
    let alert = prom.wait_for_alert("KbenchBrokerDown", Duration::from_secs(10));
    assert_eq!(alert["labels"]["instance"], target.as_str(), "{alert}");
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
}
