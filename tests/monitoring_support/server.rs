//! A real Prometheus server: started on a free loopback port with its own temp storage,
//! scraping given targets and evaluating given rule files every second, queried over its HTTP
//! API, and killed (by pid, SIGKILL to that one process) when dropped — also when an assertion
//! panics first.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// One scrape job: its name (the `job` label) and its `HOST:PORT` targets.
pub struct ScrapeJob {
    pub name: String,
    pub targets: Vec<String>,
}

impl ScrapeJob {
    pub fn new<S: Into<String>>(name: &str, targets: impl IntoIterator<Item = S>) -> ScrapeJob {
        ScrapeJob {
            name: name.into(),
            targets: targets.into_iter().map(Into::into).collect(),
        }
    }
}

/// A running Prometheus server; killed and its storage removed when dropped.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

const READY_WITHIN: Duration = Duration::from_secs(20);

impl Prometheus {
    /// Starts Prometheus scraping `jobs` and evaluating `rule_files` every second; returns once
    /// it answers /-/ready (or panics with its log).
    pub fn start(jobs: &[ScrapeJob], rule_files: &[PathBuf]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text(jobs, rule_files)).expect("write config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus { child, port, dir };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited early ({status}):\n{}", self.log());
            }
            if self.get("/-/ready").is_some_and(|(code, _)| code == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {READY_WITHIN:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Prometheus's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET `path` (with its query string) from the HTTP API: status code and body.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// The `data` of an API answer whose status is "success".
    fn api(&self, path: &str) -> Value {
        let (code, body) = self
            .get(path)
            .unwrap_or_else(|| panic!("prometheus did not answer {path}"));
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(
            code == 200 && v["status"] == "success",
            "{path}: HTTP {code}: {body}"
        );
        v["data"].clone()
    }

    /// An instant query: the result vector (each element has `metric` and `value`).
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every alert the rules hold now (pending and firing), as the API gives them.
    pub fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The alerting rule named `name` as /api/v1/rules gives it (`state`, `health`,
    /// `lastEvaluation`, ...), if Prometheus has loaded it.
    pub fn rule(&self, name: &str) -> Option<Value> {
        let data = self.api("/api/v1/rules?type=alert");
        let groups = data["groups"].as_array()?;
        groups
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .find(|r| r["name"] == name)
            .cloned()
    }

    /// Waits until the rule `name` has been evaluated after `after` (so its state reflects data
    /// scraped by then); returns the rule.
    pub fn wait_for_evaluation(&self, name: &str, after: SystemTime, within: Duration) -> Value {
        let after: chrono::DateTime<chrono::Utc> = after.into();
        self.wait_for(&format!("rule {name} to be evaluated"), within, || {
            let rule = self.rule(name)?;
            let at = chrono::DateTime::parse_from_rfc3339(rule["lastEvaluation"].as_str()?).ok()?;
            (at > after).then_some(rule)
        })
    }

    /// The firing alerts named `name`.
    pub fn firing(&self, name: &str) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
            .collect()
    }

    /// Waits until `promql` returns at least `at_least` series; returns them.
    pub fn wait_for_query(&self, promql: &str, at_least: usize, within: Duration) -> Vec<Value> {
        self.wait_for(
            &format!("`{promql}` to return {at_least} series"),
            within,
            || {
                let r = self.query(promql);
                (r.len() >= at_least).then_some(r)
            },
        )
    }

    /// Waits until an alert named `name` fires; returns the first one.
    pub fn wait_for_alert(&self, name: &str, within: Duration) -> Value {
        self.wait_for(&format!("alert {name} to fire"), within, || {
            self.firing(name).into_iter().next()
        })
    }

    /// Polls `check` every 200 ms until it gives a value; past `within`, panics with what
    /// Prometheus holds (alerts, its log) so a failure says why.
    pub fn wait_for<T>(&self, what: &str, within: Duration, check: impl Fn() -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = check() {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {within:?} waiting for {what}; alerts now: {}\nprometheus log:\n{}",
                    serde_json::to_string(&self.alerts()).unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Child::kill is SIGKILL to this one pid; then reap it before the storage goes.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text(jobs: &[ScrapeJob], rule_files: &[PathBuf]) -> String {
    let mut s = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    s.push_str("rule_files:\n");
    for f in rule_files {
        s.push_str(&format!("  - {:?}\n", f.display().to_string()));
    }
    s.push_str("scrape_configs:\n");
    for j in jobs {
        s.push_str(&format!(
            "  - job_name: {:?}\n    static_configs:\n      - targets: {:?}\n",
            j.name, j.targets
        ));
    }
    s
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A plain HTTP/1.0 GET on loopback (no chunked answers), bounded by 5 s timeouts.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
