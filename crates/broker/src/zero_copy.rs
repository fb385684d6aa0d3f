//! Writing responses to a client socket, including Fetch responses whose record bytes go from
//! segment files to the socket with `sendfile(2)` (or read+write with `--zero-copy false`).
//!
//! Owns: the ordering and completeness of bytes on one connection's socket. Must not: build
//! responses. Why this is safe to mix with tokio writes: one task owns the write half and
//! writes each part to completion before the next, so framing buffers and file bytes reach the
//! kernel in order; sendfile runs on the non-blocking socket inside `try_io`, which clears
//! tokio's readiness on EAGAIN so we wait for the next writable event, and partial sends loop.

use std::io;
use std::os::unix::fs::FileExt;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::log::partition::FileSlice;
use crate::protocol::fetch_encode::Part;

/// Writes all parts in order. An error leaves the connection unusable (framing is broken).
pub async fn write_parts(
    wr: &mut OwnedWriteHalf,
    parts: &[Part],
    zero_copy: bool,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    for part in parts {
        match part {
            Part::Bytes(b) => wr.write_all(b).await?,
            Part::File(s) if zero_copy => sendfile_all(wr.as_ref(), s).await?,
            Part::File(s) => copy_all(wr, s, scratch).await?,
        }
    }
    Ok(())
}

async fn sendfile_all(stream: &TcpStream, s: &FileSlice) -> io::Result<()> {
    let mut offset = s.pos;
    let end = s.pos + s.len as u64;
    while offset < end {
        stream.writable().await?;
        let remaining = (end - offset) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            let mut off = offset;
            rustix::fs::sendfile(stream, &*s.file, Some(&mut off), remaining)
                .map_err(io::Error::from)
        });
        match sent {
            // The file ended before the slice did: the frame size already promised these bytes.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than the fetch slice",
                ))
            }
            Ok(n) => offset += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn copy_all(wr: &mut OwnedWriteHalf, s: &FileSlice, scratch: &mut Vec<u8>) -> io::Result<()> {
    const CHUNK: usize = 256 * 1024;
    let mut offset = s.pos;
    let end = s.pos + s.len as u64;
    while offset < end {
        let n = ((end - offset) as usize).min(CHUNK);
        scratch.resize(n, 0);
        s.file.read_exact_at(&mut scratch[..n], offset)?;
        wr.write_all(&scratch[..n]).await?;
        offset += n as u64;
    }
    Ok(())
}
