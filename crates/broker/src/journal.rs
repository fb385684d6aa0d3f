//! The record format of the broker's journals (committed offsets in `group::offsets`,
//! transaction state in `txn::journal`): `u32 len | u32 crc32c(payload) | payload`, with
//! big-endian fields in the payload.
//!
//! Owns: framing, the torn-tail rule and field decoding. Must not: know what a payload means.

/// One record: the payload framed with its length and CRC-32C.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(payload.len() + 8);
    rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    rec.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    rec.extend_from_slice(payload);
    rec
}

/// The payloads of `bytes`, in order, up to the first torn or corrupt record (a crash
/// mid-append leaves one at the tail; everything before it is intact).
pub fn payloads(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let head = bytes.get(pos..pos + 8)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let p = bytes.get(pos + 8..pos + 8 + len)?;
        if crc32c::crc32c(p) != crc {
            return None;
        }
        pos += 8 + len;
        Some(p)
    })
}

/// Reads big-endian fields off a payload; `None` once it runs short.
pub struct Cursor<'a>(pub &'a [u8]);

impl Cursor<'_> {
    pub fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    pub fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
    }
    /// `n` bytes as text (invalid UTF-8 replaced).
    pub fn string(&mut self, n: usize) -> Option<String> {
        self.take(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    /// A string after its u16 length.
    pub fn str16(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        self.string(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stop_at_a_torn_or_corrupt_record() {
        let mut bytes = frame(b"one");
        bytes.extend_from_slice(&frame(b"two"));
        let mut corrupt = frame(b"three");
        corrupt[9] ^= 1;
        bytes.extend_from_slice(&corrupt);
        bytes.extend_from_slice(&frame(b"four"));
        let got: Vec<&[u8]> = payloads(&bytes).collect();
        assert_eq!(got, [&b"one"[..], &b"two"[..]]);
        let torn = &frame(b"five")[..6];
        assert_eq!(payloads(torn).count(), 0);
    }
}
