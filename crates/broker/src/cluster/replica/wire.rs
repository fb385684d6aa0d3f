//! A follower's connection to its leader: one Kafka request at a time, framed and decoded
//! with the codec crate (the leader answers with the same bytes it gives any client).
//!
//! Must not: retry; the fetcher decides what a failure means.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a leader (a Fetch of 10 MiB plus framing).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
}

impl Conn {
    pub async fn connect(addr: &str, timeout: Duration, client_id: String) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {addr} timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
        })
    }

    /// Sends `req` as `key` v`version` and reads its response.
    pub async fn call<Q: Encodable, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Q,
    ) -> anyhow::Result<R> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(self.client_id.clone());
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, key.request_header_version(version))?;
        req.encode(&mut buf, version)?;
        let n = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&n.to_be_bytes());
        self.stream.write_all(&buf).await?;
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE_BYTES);
        let size = size.ok_or_else(|| anyhow::anyhow!("bad response size"))?;
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).await?;
        let mut body = Bytes::from(body);
        let h = ResponseHeader::decode(&mut body, key.response_header_version(version))?;
        anyhow::ensure!(
            h.correlation_id == self.correlation_id,
            "correlation id {} answered {}",
            self.correlation_id,
            h.correlation_id
        );
        R::decode(&mut body, version)
    }
}
