//! Record values: the stamp followed by payload bytes of the chosen size and compressibility.
//!
//! A pool of ready values is built once at start-up; each record takes the next one (file
//! parts: a random one) and has its stamp written in place (librdkafka copies the value on
//! send), so the hot path copies 36 bytes and allocates nothing. Generated payloads are
//! `random_ratio` random bytes then zeros, as OMB's `randomBytesRatio`. With compression the
//! pool is large enough that batches do not repeat values (which would flatter compression),
//! capped at 64 MiB; without it, small enough to stay in the CPU cache.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore};

use super::stamp::STAMP_LEN;

const POOL_BYTES_MAX: usize = 64 << 20;
const POOL_VALUES_MAX: usize = 1024;
/// Without compression the bytes do not matter to anyone, so the pool stays small enough to
/// sit in the CPU cache (copying a cold 1 KiB value per record cost measurable throughput).
const POOL_VALUES_UNCOMPRESSED: usize = 16;

/// Where payload bytes come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PayloadSpec {
    /// Values of exactly `record_size` bytes (stamp included).
    Generated {
        record_size: usize,
        random_ratio: f64,
    },
    /// The parts of a file, each prefixed with the stamp.
    File { path: String, parts: usize },
}

/// The pool of values one producer sends from.
pub struct PayloadPool {
    values: Vec<Vec<u8>>,
    /// File parts are picked at random (as Kafka's tool does); generated values in turn, which
    /// walks memory in order (cheaper per record) and repeats only after the whole pool.
    random: bool,
    next: usize,
}

impl PayloadPool {
    /// Builds a pool of generated values.
    pub fn generated(
        record_size: usize,
        random_ratio: f64,
        compressed: bool,
        rng: &mut SmallRng,
    ) -> Self {
        let most = if compressed {
            POOL_VALUES_MAX
        } else {
            POOL_VALUES_UNCOMPRESSED
        };
        let count = (POOL_BYTES_MAX / record_size.max(1)).clamp(1, most);
        let random_len =
            ((record_size - STAMP_LEN) as f64 * random_ratio.clamp(0.0, 1.0)).round() as usize;
        let values = (0..count)
            .map(|_| {
                let mut v = vec![0u8; record_size];
                rng.fill_bytes(&mut v[STAMP_LEN..STAMP_LEN + random_len]);
                v
            })
            .collect();
        PayloadPool {
            values,
            random: false,
            next: 0,
        }
    }

    /// Builds a pool from file parts (each part gets room for the stamp in front).
    pub fn from_parts(parts: &[Vec<u8>]) -> Self {
        let values = parts
            .iter()
            .map(|p| {
                let mut v = vec![0u8; STAMP_LEN + p.len()];
                v[STAMP_LEN..].copy_from_slice(p);
                v
            })
            .collect();
        PayloadPool {
            values,
            random: true,
            next: 0,
        }
    }

    /// A value to stamp and send; the caller writes the stamp into its first bytes.
    #[inline]
    pub fn pick(&mut self, rng: &mut SmallRng) -> &mut [u8] {
        let n = self.values.len();
        let i = if self.random && n > 1 {
            rng.random_range(0..n)
        } else {
            self.next = (self.next + 1) % n;
            self.next
        };
        &mut self.values[i]
    }
}

/// Splits a payload file by `delimiter` (Kafka's tool splits on it and drops empty parts).
pub fn read_payload_file(path: &Path, delimiter: &str) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path)
        .with_context(|| format!("--payload-file: cannot read '{}'", path.display()))?;
    let delimiter = unescape(delimiter);
    if delimiter.is_empty() {
        bail!("--payload-delimiter must not be empty");
    }
    let mut parts = Vec::new();
    let mut rest = &data[..];
    while let Some(pos) = find(rest, delimiter.as_bytes()) {
        if pos > 0 {
            parts.push(rest[..pos].to_vec());
        }
        rest = &rest[pos + delimiter.len()..];
    }
    if !rest.is_empty() {
        parts.push(rest.to_vec());
    }
    if parts.is_empty() {
        bail!(
            "--payload-file '{}' holds no payloads (empty after splitting on the delimiter)",
            path.display()
        );
    }
    Ok(parts)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Turns the escapes people type on a command line (`\n`, `\t`, `\r`) into the characters.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\r", "\r")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_values_have_the_record_size_and_random_share() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut pool = PayloadPool::generated(1036, 0.5, true, &mut rng);
        let v = pool.pick(&mut rng);
        assert_eq!(v.len(), 1036);
        let tail = &v[STAMP_LEN..];
        assert!(
            tail[500..].iter().all(|&b| b == 0),
            "second half must be zeros"
        );
        assert!(tail[..500].iter().filter(|&&b| b != 0).count() > 400);
    }

    #[test]
    fn payload_file_is_split_on_the_delimiter_and_empty_parts_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.txt");
        std::fs::write(&f, "alpha\nbeta\n\ngamma").unwrap();
        let parts = read_payload_file(&f, "\\n").unwrap();
        assert_eq!(
            parts,
            vec![b"alpha".to_vec(), b"beta".to_vec(), b"gamma".to_vec()]
        );
        let parts = read_payload_file(&f, "ta").unwrap();
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn fails_on_a_missing_or_empty_payload_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_payload_file(&dir.path().join("nope"), "\\n")
            .unwrap_err()
            .to_string()
            .contains("--payload-file"));
        let f = dir.path().join("empty");
        std::fs::write(&f, "\n\n").unwrap();
        assert!(read_payload_file(&f, "\\n").is_err());
    }
}
