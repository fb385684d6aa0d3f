//! One proxied connection: connects upstream, then pumps bytes both ways under the link's
//! standing fault, until both sides have closed, one side fails, or a `Reset` comes.
//!
//! Each direction is a reader and a writer joined by a small queue: the reader stamps each
//! chunk with the time it is due (now, or now + delay ± jitter), the writer waits for that
//! time, so delayed chunks keep their order and reading goes on meanwhile. Under `Blackhole`
//! neither reads nor writes. An error on one side is passed on as an RST to the other, as a
//! direct connection would have seen it.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{LinkFault, Shared};

/// Bytes read at most per chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight per direction; past it the reader waits (memory stays bounded under delay).
const QUEUE_CHUNKS: usize = 256;

/// Counts the connection as open while it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn serve(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    shared.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(shared.clone());
    let mut resets = shared.resets.subscribe();
    resets.borrow_and_update();
    let server = tokio::select! {
        connected = TcpStream::connect(upstream) => match connected {
            Ok(s) => s,
            // The upstream is down: close the client's connection, as a dead peer would.
            Err(_) => return reset(&client),
        },
        _ = resets.changed() => return reset(&client),
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client, mut server) = (client, server);
    let clean = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let up = pump(cr, sw, &shared);
        let down = pump(sr, cw, &shared);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => { up_done = true; if r.is_err() { break false } },
                r = &mut down, if !down_done => { down_done = true; if r.is_err() { break false } },
                _ = resets.changed() => break false,
            }
            if up_done && down_done {
                break true;
            }
        }
    };
    if !clean {
        reset(&client);
        reset(&server);
    }
}

/// Makes the coming close an RST (SO_LINGER 0) rather than a FIN.
fn reset(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

/// A chunk read from one side, and when it may be written to the other.
struct Chunk {
    due: Instant,
    bytes: Vec<u8>,
}

/// One direction: reads `from` until EOF, writes every chunk to `to` when due, then passes the
/// EOF on (shutdown of the write side). `Err` on any IO error.
async fn pump<R, W>(mut from: R, mut to: W, shared: &Shared) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUE_CHUNKS);
    // Moved in: the reader's end drops `tx`, which ends the writer's loop.
    let reader = async move {
        let mut fault = shared.fault.subscribe();
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            wait_while_blackholed(&mut fault).await;
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(());
            }
            let due = Instant::now() + delay_of(*fault.borrow());
            // A chunk owns exactly its bytes: a queue of small chunks stays small.
            let bytes = buf[..n].to_vec();
            if tx.send(Chunk { due, bytes }).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        let mut fault = shared.fault.subscribe();
        while let Some(chunk) = rx.recv().await {
            // Not even a zero sleep when due: tokio's timer would hold it to its next
            // millisecond tick, adding up to 1 ms per pass to a healthy link.
            if chunk.due > Instant::now() {
                tokio::time::sleep_until(chunk.due).await;
            }
            wait_while_blackholed(&mut fault).await;
            to.write_all(&chunk.bytes).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// How long a chunk read now waits under `fault`: `ms ± jitter_ms`, uniform, never negative.
fn delay_of(fault: LinkFault) -> Duration {
    match fault {
        LinkFault::Delay { ms, jitter_ms } => {
            let jitter = jitter_ms.min(i64::MAX as u64) as i64;
            let offset = if jitter == 0 {
                0
            } else {
                rand::rng().random_range(-jitter..=jitter)
            };
            let ms = ms.min(i64::MAX as u64) as i64;
            Duration::from_millis(ms.saturating_add(offset).max(0) as u64)
        }
        _ => Duration::ZERO,
    }
}

async fn wait_while_blackholed(fault: &mut watch::Receiver<LinkFault>) {
    while *fault.borrow_and_update() == LinkFault::Blackhole {
        if fault.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_stays_within_the_jitter_and_never_goes_negative() {
        for _ in 0..1000 {
            let d = delay_of(LinkFault::Delay {
                ms: 100,
                jitter_ms: 20,
            });
            assert!((80..=120).contains(&d.as_millis()), "{d:?}");
            let d = delay_of(LinkFault::Delay {
                ms: 5,
                jitter_ms: 50,
            });
            assert!(d.as_millis() <= 55, "{d:?}");
        }
        assert_eq!(delay_of(LinkFault::Blackhole), Duration::ZERO);
        assert_eq!(delay_of(LinkFault::Refuse), Duration::ZERO);
    }
}
