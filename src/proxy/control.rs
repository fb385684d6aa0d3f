//! The control protocol of a standalone `kbench proxy`: one command per line on a loopback TCP
//! port, one answer line per command.
//!
//! Commands: `delay MS [JITTER_MS]`, `blackhole`, `reset`, `refuse`, `heal` (alias `none`),
//! `status`. Every answer is either `ok fault=F [delay_ms=MS jitter_ms=J] open=N accepted=N
//! resets=N` (the state after the command) or `error MESSAGE`. A client may send several
//! commands on one connection. `send` is the client side, used by `fault::nodes` and tests.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{LinkFault, Proxy, ProxyStatus};

/// Longest delay a command may ask for: an hour is already no link at all.
const MAX_DELAY_MS: u64 = 3_600_000;
/// Longest command line read; a longer one is answered with an error and the connection closed.
const MAX_LINE_BYTES: u64 = 256;

/// A parsed command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Set(LinkFault),
    Status,
}

/// Parses one command line (see the module header).
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let fault = match words.as_slice() {
        ["status"] => return Ok(Command::Status),
        ["heal"] | ["none"] => LinkFault::None,
        ["blackhole"] => LinkFault::Blackhole,
        ["reset"] => LinkFault::Reset,
        ["refuse"] => LinkFault::Refuse,
        ["delay", ms] => LinkFault::Delay {
            ms: millis("delay MS", ms)?,
            jitter_ms: 0,
        },
        ["delay", ms, jitter] => LinkFault::Delay {
            ms: millis("delay MS", ms)?,
            jitter_ms: millis("delay JITTER_MS", jitter)?,
        },
        [] => return Err("empty command; expected delay MS [JITTER_MS], blackhole, reset, refuse, heal or status".into()),
        _ => {
            return Err(format!(
                "unknown command '{}'; expected delay MS [JITTER_MS], blackhole, reset, refuse, heal or status",
                line.trim()
            ))
        }
    };
    Ok(Command::Set(fault))
}

fn millis(what: &str, text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Ok(ms),
        _ => Err(format!(
            "{what}: wants whole milliseconds 0..={MAX_DELAY_MS}, got '{text}'"
        )),
    }
}

/// The command line that sets `fault` (`heal` for `None`).
pub fn command_for(fault: LinkFault) -> String {
    match fault {
        LinkFault::None => "heal".into(),
        LinkFault::Delay { ms, jitter_ms } => format!("delay {ms} {jitter_ms}"),
        LinkFault::Blackhole => "blackhole".into(),
        LinkFault::Reset => "reset".into(),
        LinkFault::Refuse => "refuse".into(),
    }
}

/// The `ok ...` answer for `status`.
pub fn format_status(s: &ProxyStatus) -> String {
    let fault = match s.fault {
        LinkFault::None => "fault=none".to_string(),
        LinkFault::Delay { ms, jitter_ms } => {
            format!("fault=delay delay_ms={ms} jitter_ms={jitter_ms}")
        }
        LinkFault::Blackhole => "fault=blackhole".into(),
        LinkFault::Reset => "fault=reset".into(),
        LinkFault::Refuse => "fault=refuse".into(),
    };
    format!(
        "ok {fault} open={} accepted={} resets={}",
        s.open, s.accepted, s.resets
    )
}

/// Answers one command line against `proxy`.
pub fn answer(proxy: &Proxy, line: &str) -> String {
    match parse(line) {
        Ok(Command::Set(fault)) => {
            proxy.set(fault);
            format_status(&proxy.status())
        }
        Ok(Command::Status) => format_status(&proxy.status()),
        Err(e) => format!("error {e}"),
    }
}

/// Serves the control protocol on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, proxy: std::sync::Arc<Proxy>) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(session(conn, proxy.clone()));
            }
            Err(e) => {
                tracing::warn!("proxy control: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn session(conn: tokio::net::TcpStream, proxy: std::sync::Arc<Proxy>) {
    let (read, mut write) = conn.into_split();
    let mut read = tokio::io::BufReader::new(read);
    loop {
        let mut line = String::new();
        match (&mut read).take(MAX_LINE_BYTES).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let too_long = !line.ends_with('\n') && line.len() as u64 >= MAX_LINE_BYTES;
        let reply = if too_long {
            format!("error command longer than {MAX_LINE_BYTES} bytes")
        } else {
            answer(&proxy, &line)
        };
        if write
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
            || too_long
        {
            return;
        }
    }
}

/// Sends one command to the control port at `control` and returns the `ok ...` answer; an
/// `error ...` answer, or no answer within `timeout`, is an error.
pub fn send(control: SocketAddr, command: &str, timeout: Duration) -> anyhow::Result<String> {
    let mut conn = TcpStream::connect_timeout(&control, timeout)
        .with_context(|| format!("proxy control {control}: cannot connect"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    conn.write_all(format!("{command}\n").as_bytes())
        .with_context(|| format!("proxy control {control}: sending '{command}'"))?;
    let mut reply = String::new();
    BufReader::new(&conn)
        .read_line(&mut reply)
        .with_context(|| format!("proxy control {control}: no answer to '{command}'"))?;
    let reply = reply.trim_end().to_string();
    if reply.starts_with("ok") {
        Ok(reply)
    } else if reply.is_empty() {
        bail!("proxy control {control}: connection closed without an answer to '{command}'")
    } else {
        bail!("proxy control {control}: '{command}' answered: {reply}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_and_round_trips_faults() {
        for fault in [
            LinkFault::None,
            LinkFault::Delay {
                ms: 100,
                jitter_ms: 20,
            },
            LinkFault::Blackhole,
            LinkFault::Reset,
            LinkFault::Refuse,
        ] {
            assert_eq!(parse(&command_for(fault)), Ok(Command::Set(fault)));
        }
        assert_eq!(parse("status\n"), Ok(Command::Status));
        assert_eq!(parse("none"), Ok(Command::Set(LinkFault::None)));
        assert_eq!(
            parse("delay 7"),
            Ok(Command::Set(LinkFault::Delay {
                ms: 7,
                jitter_ms: 0
            }))
        );
    }

    #[test]
    fn rejects_bad_commands_with_a_reason() {
        assert!(parse("").unwrap_err().contains("empty command"));
        assert!(parse("drop 5")
            .unwrap_err()
            .contains("unknown command 'drop 5'"));
        assert!(parse("delay x").unwrap_err().contains("delay MS"));
        assert!(parse("delay 10 -1").unwrap_err().contains("JITTER_MS"));
        assert!(parse("delay 3600001").unwrap_err().contains("0..=3600000"));
        assert!(parse("delay 1 2 3")
            .unwrap_err()
            .contains("unknown command"));
    }
}
