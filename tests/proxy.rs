//! kbench's TCP fault proxy, through the `kbench proxy` binary and its control port, and as a
//! library: delay on a loopback echo round trip, blackhole, reset, refuse, bad input, and
//! librdkafka producing through the proxy to the bundled broker.
//!
//! Timing bounds are generous (the machine is shared): a 100 ms delay must add at least 100 ms
//! each way and not more than a second.

mod kafka_common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kbench::proxy::{control, LinkFault, Proxy};

/// An echo server on 127.0.0.1 (a thread per connection, for the test binary's lifetime).
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// `kbench proxy` as a child process; SIGKILLed (by its own pid) when dropped.
struct ProxyProcess {
    child: Child,
    listen: SocketAddr,
    control: SocketAddr,
}

impl ProxyProcess {
    fn start(upstream: SocketAddr) -> ProxyProcess {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("kbench"))
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--control",
                "127.0.0.1:0",
            ])
            .args(["--upstream", &upstream.to_string()])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kbench proxy");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("kbench proxy says where it listens");
        // "kbench proxy: listening on A (upstream B), control on C"
        let re =
            regex::Regex::new(r"listening on (\S+) \(upstream \S+\), control on (\S+)$").unwrap();
        let caps = re
            .captures(&line)
            .unwrap_or_else(|| panic!("unexpected line: {line}"));
        ProxyProcess {
            listen: caps[1].parse().unwrap(),
            control: caps[2].parse().unwrap(),
            child,
        }
    }

    fn send(&self, command: &str) -> String {
        control::send(self.control, command, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{command}: {e:#}"))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// One echo round trip of `msg`; returns the time it took.
fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let started = Instant::now();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    started.elapsed()
}

fn median_round_trip(s: &mut TcpStream, rounds: usize) -> Duration {
    let mut times: Vec<Duration> = (0..rounds).map(|_| round_trip(s, b"ping")).collect();
    times.sort();
    times[rounds / 2]
}

#[test]
fn a_delay_of_100_ms_adds_about_200_ms_to_an_echo_round_trip_and_heal_removes_it() {
    let proxy = ProxyProcess::start(echo_server());
    let mut s = connect(proxy.listen);
    // A healthy link adds no timer tick: a loopback echo through the proxy takes tens of
    // microseconds (it took 2.5 ms when every chunk waited for tokio's next 1 ms tick).
    let before = median_round_trip(&mut s, 21);
    assert!(
        before < Duration::from_micros(1500),
        "healthy round trip {before:?}"
    );

    let status = proxy.send("delay 100 0");
    assert!(
        status.starts_with("ok fault=delay delay_ms=100 jitter_ms=0 open=1"),
        "{status}"
    );
    // The round trip passes the proxy twice: request, then echo.
    let delayed = median_round_trip(&mut s, 5);
    eprintln!("echo round trip: {before:?} healthy, {delayed:?} with delay 100 0");
    assert!(delayed >= Duration::from_millis(200), "{delayed:?}");
    assert!(delayed < Duration::from_millis(1200), "{delayed:?}");

    proxy.send("delay 100 50");
    let jittered = median_round_trip(&mut s, 5);
    eprintln!("echo round trip: {jittered:?} with delay 100 50");
    assert!(jittered >= Duration::from_millis(100), "{jittered:?}");

    assert!(proxy.send("heal").starts_with("ok fault=none"));
    let healed = median_round_trip(&mut s, 5);
    eprintln!("echo round trip: {healed:?} after heal");
    assert!(healed < Duration::from_millis(100), "{healed:?}");
}

#[test]
fn blackhole_holds_bytes_with_the_connection_open_and_heal_lets_them_through() {
    let proxy = ProxyProcess::start(echo_server());
    let mut s = connect(proxy.listen);
    round_trip(&mut s, b"before");

    assert!(proxy
        .send("blackhole")
        .starts_with("ok fault=blackhole open=1"));
    s.write_all(b"held").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).expect_err("nothing may pass a blackhole");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "a timeout, not a closed connection: {err:?}"
    );
    // A new connection is accepted but gets nothing through either.
    let mut late = connect(proxy.listen);
    late.write_all(b"late").unwrap();
    late.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(late.read(&mut buf).is_err());
    assert!(proxy.send("status").contains("open=2"), "both stay open");

    proxy.send("heal");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut held = [0u8; 4];
    s.read_exact(&mut held).unwrap();
    assert_eq!(&held, b"held", "the held bytes arrive after the heal");
    round_trip(&mut s, b"after");
    late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    late.read_exact(&mut held).unwrap();
    assert_eq!(&held, b"late");
}

#[test]
fn reset_closes_open_connections_with_an_rst_and_new_ones_pass() {
    let proxy = ProxyProcess::start(echo_server());
    let mut s = connect(proxy.listen);
    round_trip(&mut s, b"before");

    let status = proxy.send("reset");
    assert!(
        status.contains("fault=none") && status.contains("resets=1"),
        "{status}"
    );
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).expect_err("the connection is reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");

    let mut fresh = connect(proxy.listen);
    round_trip(&mut fresh, b"after");
}

#[test]
fn refuse_refuses_new_connections_keeps_open_ones_and_heal_accepts_again() {
    let proxy = ProxyProcess::start(echo_server());
    let mut open = connect(proxy.listen);
    round_trip(&mut open, b"before");

    assert!(proxy.send("refuse").starts_with("ok fault=refuse"));
    // The listener closes in the proxy's own time; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match TcpStream::connect(proxy.listen) {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => panic!("still accepting 5 s after refuse"),
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    round_trip(&mut open, b"open ones pass");

    proxy.send("heal");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        match TcpStream::connect(proxy.listen) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("not accepting 5 s after heal: {e}"),
        }
    };
    again
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    round_trip(&mut again, b"after");
}

#[test]
fn the_control_port_answers_bad_commands_with_an_error_and_keeps_serving() {
    let proxy = ProxyProcess::start(echo_server());
    let mut c = TcpStream::connect(proxy.control).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"explode\ndelay ten\nstatus\n").unwrap();
    let mut lines = BufReader::new(c).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("error unknown command 'explode'"),
        "{first}"
    );
    let second = lines.next().unwrap().unwrap();
    assert!(second.starts_with("error delay MS"), "{second}");
    let third = lines.next().unwrap().unwrap();
    assert!(
        third.starts_with("ok fault=none open=0 accepted=0 resets=0"),
        "{third}"
    );
    let err = control::send(proxy.control, "delay", Duration::from_secs(5)).unwrap_err();
    assert!(format!("{err:#}").contains("answered: error"), "{err:#}");
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    // A proxy forwarding to itself would open connections until no descriptor is left.
    let port = kafka_common::free_port();
    let own = format!("127.0.0.1:{port}");
    assert_cmd::Command::cargo_bin("kbench")
        .unwrap()
        .args(["proxy", "--listen", &own, "--upstream", &own, "--control", "127.0.0.1:0"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!(
            "--listen {own} --upstream {own}: cannot start the proxy: the upstream {own} is the proxy's own address"
        )));
    for (args, flag) in [
        (
            [
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
                "--control",
                "0.0.0.0:0",
            ],
            "--control 0.0.0.0:0: must be a loopback address",
        ),
        (
            [
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "nowhere",
                "--control",
                "127.0.0.1:0",
            ],
            "--upstream 'nowhere'",
        ),
    ] {
        assert_cmd::Command::cargo_bin("kbench")
            .unwrap()
            .arg("proxy")
            .args(args)
            .timeout(Duration::from_secs(30))
            .assert()
            .code(2)
            .stderr(predicates::str::contains(flag));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_library_proxy_keeps_chunk_order_under_jitter() {
    let rt = runtime();
    let proxy = rt
        .block_on(Proxy::start("127.0.0.1:0".parse().unwrap(), echo_server()))
        .unwrap();
    proxy.set(LinkFault::Delay {
        ms: 20,
        jitter_ms: 20,
    });
    let mut s = connect(proxy.local_addr());
    // Separate small writes, each likely its own chunk, each drawn its own delay.
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let msg = format!("{i:05};");
        s.write_all(msg.as_bytes()).unwrap();
        sent.extend_from_slice(msg.as_bytes());
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    let mut back = vec![0u8; sent.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&back),
        String::from_utf8_lossy(&sent)
    );
    let status = proxy.status();
    assert_eq!(status.accepted, 1);
    assert_eq!(status.open, 1);
}

#[test]
fn librdkafka_produces_to_the_bundled_broker_through_the_proxy_and_feels_its_delay() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::ClientConfig;

    // The broker must advertise the proxy's port, or clients bypass the proxy after bootstrap.
    let proxy_listen: SocketAddr = format!("127.0.0.1:{}", kafka_common::free_port())
        .parse()
        .unwrap();
    let broker_listen: SocketAddr = format!("127.0.0.1:{}", kafka_common::free_port())
        .parse()
        .unwrap();
    let _broker = kbench_broker::EmbeddedBroker::start(kbench_broker::BrokerConfig {
        listen: broker_listen,
        advertised_listener: Some(proxy_listen.to_string()),
        ..kbench_broker::BrokerConfig::embedded()
    })
    .unwrap();
    let rt = runtime();
    let proxy = rt
        .block_on(Proxy::start(proxy_listen, broker_listen))
        .unwrap();

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", proxy.local_addr().to_string())
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let produce = |n: usize| {
        let started = Instant::now();
        for i in 0..n {
            let payload = format!("record-{i}");
            producer
                .send(BaseRecord::<(), _>::to("via-proxy").payload(&payload))
                .map_err(|(e, _)| e)
                .unwrap();
            // One at a time, so the time measured is one produce round trip each.
            producer.flush(Duration::from_secs(30)).unwrap();
        }
        started.elapsed() / n as u32
    };
    produce(5); // metadata, connection, topic creation
    let healthy = produce(5);
    proxy.set(LinkFault::Delay {
        ms: 100,
        jitter_ms: 0,
    });
    let delayed = produce(3);
    eprintln!(
        "produce round trip through the proxy: {healthy:?} healthy, {delayed:?} with delay 100"
    );
    // Request and response each pass the proxy once: +200 ms, so the records took the proxy's
    // path (the advertised port), not the broker's own.
    assert!(delayed >= Duration::from_millis(200), "{delayed:?}");
    assert!(delayed < Duration::from_millis(2000), "{delayed:?}");
    assert!(proxy.status().accepted >= 1);
    assert_eq!(
        kafka_common::end_offsets(&proxy_listen.to_string(), "via-proxy"),
        vec![13],
        "every record reached the broker"
    );
}
