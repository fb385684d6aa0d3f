//! The bundled broker with Debian's kcat (an old librdkafka: the Produce min-version-0 quirk
//! decides whether it compresses at all): produce and consume with every codec.

mod broker_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use broker_support::*;

fn kcat(args: &[&str], stdin: Option<&str>, timeout: Duration) -> (String, String) {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat runs");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(input.as_bytes()).expect("write to kcat");
    }
    // Read the pipes while waiting (a full stdout pipe would block kcat), bounded in time.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("kcat output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("kcat {args:?} did not finish within {timeout:?}");
        }
    };
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kcat_produces_and_consumes_with_every_codec() {
    if !require_peer(have_kcat(), "kcat") {
        return;
    }
    let b = start_with(|c| c.num_partitions = 2);
    let boot = b.bootstrap_servers();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("kcat-{codec}");
        let vals = values(&topic, 1000);
        let input = vals.join("\n") + "\n";
        let (_, err) = kcat(
            &[
                "-b",
                &boot,
                "-P",
                "-t",
                &topic,
                "-z",
                codec,
                "-d",
                "msg",
                "-X",
                "linger.ms=20",
            ],
            Some(&input),
            Duration::from_secs(60),
        );
        assert!(
            !err.contains("does not support compression"),
            "{codec}: kcat did not compress:\n{err}"
        );
        assert!(
            !err.to_lowercase().contains("error"),
            "{codec}: producer errors:\n{err}"
        );
        if codec != "none" {
            // librdkafka logs "Produce MessageSet with N message(s) (..., gzip)" per batch.
            let compressed = err
                .lines()
                .any(|l| l.contains("Produce MessageSet") && l.ends_with(&format!(", {codec})")));
            assert!(
                compressed,
                "{codec}: kcat did not compress its batches:\n{err}"
            );
        }
        let (out, err) = kcat(
            &[
                "-b",
                &boot,
                "-C",
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-q",
            ],
            None,
            Duration::from_secs(60),
        );
        let mut got: Vec<&str> = out.lines().collect();
        got.sort_unstable();
        let mut want: Vec<&str> = vals.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(
            got, want,
            "{codec}: consumed records differ; kcat stderr:\n{err}"
        );
    }
}

#[test]
fn kcat_consumes_in_a_group() {
    if !require_peer(have_kcat(), "kcat") {
        return;
    }
    let b = start_with(|c| c.num_partitions = 3);
    let boot = b.bootstrap_servers();
    let vals = values("kcat-group", 600);
    let (ok, failed) = produce(&boot, "kcat-group", &vals, &[]);
    assert_eq!((ok, failed), (600, 0));
    let (out, err) = kcat(
        &[
            "-b",
            &boot,
            "-G",
            "kg",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-X",
            "session.timeout.ms=6000",
            "kcat-group",
        ],
        None,
        Duration::from_secs(60),
    );
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    let mut want: Vec<&str> = vals.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "kcat -G stderr:\n{err}");
}
