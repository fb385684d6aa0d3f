//! `fault::nodes::NodeSet` on a stand-in node (a `kbench proxy` process, which listens and
//! exits on SIGTERM): SIGSTOP and SIGCONT show in the process state, SIGTERM and SIGKILL wait
//! until the process is gone, restart runs the cluster file's command and follows the new pid
//! it records. The Kafka-backed test is tests/kafka_cluster.rs.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kbench::fault::nodes::NodeSet;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kbench() -> String {
    assert_cmd::cargo::cargo_bin("kbench").display().to_string()
}

/// A process that listens on `port` until signalled.
fn stand_in(port: u16) -> Child {
    Command::new(kbench())
        .args([
            "proxy",
            "--upstream",
            "127.0.0.1:9",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .unwrap()
        .1
        .trim_start()
        .chars()
        .next()
        .unwrap()
}

fn pid_in(file: &Path) -> u32 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    v["nodes"][0]["pid"].as_u64().unwrap() as u32
}

/// The restart command: starts a new stand-in in the background and writes its pid into the
/// cluster file, as scripts/kafka.sh's restart does.
/// SIGKILLs, when dropped, the process whose pid the cluster file holds (the restarted
/// stand-in is not our child), so a failed assertion leaves nothing running.
struct KillRecorded<'a>(&'a Path);

impl Drop for KillRecorded<'_> {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.0) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let direct = v["nodes"][0]["direct"].as_str().unwrap_or("?").to_string();
                if let Some(pid) = v["nodes"][0]["pid"].as_u64().filter(|&p| p > 1) {
                    // Only if the pid is still our stand-in, not a process that reused it.
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if String::from_utf8_lossy(&cmdline).contains(&direct) {
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                    }
                }
            }
        }
    }
}

const RESTART: &str = r#""$1" proxy --listen "127.0.0.1:$2" --upstream 127.0.0.1:9 --control 127.0.0.1:0 </dev/null >/dev/null 2>&1 &
sed -i "s/\"pid\": [0-9]*/\"pid\": $!/" "$3""#;

#[test]
fn signals_reach_the_node_process_and_restart_follows_the_new_pid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.json");
    let port = free_port();
    let mut first = stand_in(port);
    wait_listening(port);
    let cluster = serde_json::json!({
        "schema_version": 1,
        "kind": "test",
        "bootstrap": format!("127.0.0.1:{port}"),
        "nodes": [{
            "id": 7,
            "pid": first.id(),
            "bootstrap": format!("127.0.0.1:{port}"),
            "direct": format!("127.0.0.1:{port}"),
            "restart": ["sh", "-c", RESTART, "sh", kbench(), port.to_string(), file.display().to_string()],
            "client_proxy": null,
            "peer_proxy": null
        }]
    });
    std::fs::write(&file, serde_json::to_string_pretty(&cluster).unwrap()).unwrap();
    let _cleanup = KillRecorded(&file);
    let nodes = NodeSet::from_cluster_file(&file).unwrap();
    assert_eq!(nodes.node_ids(), vec![7]);

    nodes.stop(7).unwrap();
    assert_eq!(state(first.id()), 'T', "SIGSTOP stops the process");
    nodes.cont(7).unwrap();
    assert_ne!(state(first.id()), 'T', "SIGCONT continues it");

    nodes.terminate(7).unwrap();
    let status = first.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM is a clean exit for the stand-in: {status}"
    );

    nodes.restart(7).unwrap();
    let second = pid_in(&file);
    assert_ne!(second, first.id(), "the restart recorded a new pid");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "restart returns once the node listens"
    );

    nodes.kill(7).unwrap();
    assert!(
        !Path::new(&format!("/proc/{second}")).exists() || state(second) == 'Z',
        "SIGKILL waits until the process is gone"
    );
    let again = format!("{:#}", nodes.kill(7).unwrap_err());
    assert!(
        again.contains(&format!(
            "node 7 (pid {second}) is not running; SIGKILL not sent"
        )),
        "{again}"
    );
}
