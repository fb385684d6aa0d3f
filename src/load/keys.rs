//! Key distributions: which key each record gets.
//!
//! Keys are the decimal text of a key index (`"0"`, `"17"`, ...), written into a small buffer
//! owned by the generator, so nothing is allocated or formatted per record. A null key (`none`)
//! leaves partitioning to the client's partitioner (sticky for librdkafka).

use std::fmt;
use std::str::FromStr;

use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// The `--keys` specification.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeySpec {
    /// Null keys.
    None,
    /// Keys 0..N in turn.
    RoundRobin { n: u64 },
    /// Keys drawn uniformly from 0..N.
    Uniform { n: u64 },
    /// Keys drawn from 0..N with a Zipf law of exponent `s` (key 0 the most frequent).
    Zipf { n: u64, s: f64 },
    /// The record's sequence number: every key distinct.
    Sequential,
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::None => write!(f, "none"),
            KeySpec::RoundRobin { n } => write!(f, "round-robin:{n}"),
            KeySpec::Uniform { n } => write!(f, "uniform:{n}"),
            KeySpec::Zipf { n, s } => write!(f, "zipf:{n}:{s}"),
            KeySpec::Sequential => write!(f, "sequential"),
        }
    }
}

const KEYS_HELP: &str = "expected none, round-robin:N, uniform:N, zipf:N:S or sequential \
                         (N a whole number > 0, S an exponent > 0, e.g. zipf:1000:1.1)";

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let count = |text: &str| -> Result<u64, String> {
            match text.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "'{s}': key count '{text}' is not a whole number > 0; {KEYS_HELP}"
                )),
            }
        };
        match parts.as_slice() {
            ["none"] => Ok(KeySpec::None),
            ["sequential"] => Ok(KeySpec::Sequential),
            ["round-robin", n] => Ok(KeySpec::RoundRobin { n: count(n)? }),
            ["uniform", n] => Ok(KeySpec::Uniform { n: count(n)? }),
            ["zipf", n, exp] => {
                let n = count(n)?;
                match exp.parse::<f64>() {
                    Ok(e) if e > 0.0 && e.is_finite() => Ok(KeySpec::Zipf { n, s: e }),
                    _ => Err(format!(
                        "'{s}': Zipf exponent '{exp}' must be a number > 0; {KEYS_HELP}"
                    )),
                }
            }
            _ => Err(format!("'{s}': {KEYS_HELP}")),
        }
    }
}

/// Produces keys for one producer; owns its text buffer.
pub struct KeyGen {
    spec: KeySpec,
    zipf: Option<Zipf<f64>>,
    next: u64,
    buf: itoa::Buffer,
}

impl KeyGen {
    pub fn new(spec: &KeySpec, start: u64) -> Self {
        let zipf = match spec {
            // Zipf::new only fails for n < 1 or s < 0, both ruled out by parsing.
            KeySpec::Zipf { n, s } => Zipf::new(*n as f64, *s).ok(),
            _ => None,
        };
        KeyGen {
            spec: spec.clone(),
            zipf,
            next: start,
            buf: itoa::Buffer::new(),
        }
    }

    /// The key of the record with sequence `seq`, or `None` for a null key.
    pub fn key(&mut self, seq: u64, rng: &mut SmallRng) -> Option<&[u8]> {
        let index = match &self.spec {
            KeySpec::None => return None,
            KeySpec::Sequential => seq,
            KeySpec::RoundRobin { n } => {
                let k = self.next % n;
                self.next = self.next.wrapping_add(1);
                k
            }
            KeySpec::Uniform { n } => rng.random_range(0..*n),
            // Zipf yields floats in 1..=n; keys are 0-based.
            KeySpec::Zipf { .. } => self.zipf.as_ref().map_or(0, |z| z.sample(rng) as u64 - 1),
        };
        Some(self.buf.format(index).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!("none".parse::<KeySpec>().unwrap(), KeySpec::None);
        assert_eq!(
            "sequential".parse::<KeySpec>().unwrap(),
            KeySpec::Sequential
        );
        assert_eq!(
            "round-robin:4".parse::<KeySpec>().unwrap(),
            KeySpec::RoundRobin { n: 4 }
        );
        assert_eq!(
            "uniform:10".parse::<KeySpec>().unwrap(),
            KeySpec::Uniform { n: 10 }
        );
        assert_eq!(
            "zipf:100:1.2".parse::<KeySpec>().unwrap(),
            KeySpec::Zipf { n: 100, s: 1.2 }
        );
    }

    #[test]
    fn fails_with_zero_or_missing_counts_and_names_the_forms() {
        for bad in [
            "round-robin:0",
            "uniform",
            "zipf:10",
            "zipf:10:-1",
            "random:5",
            "",
        ] {
            let err = bad.parse::<KeySpec>().unwrap_err();
            assert!(err.contains("round-robin:N"), "{bad}: {err}");
        }
    }

    #[test]
    fn round_robin_cycles_through_n_keys() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut g = KeyGen::new(&KeySpec::RoundRobin { n: 3 }, 0);
        let keys: Vec<String> = (0..6)
            .map(|i| String::from_utf8(g.key(i, &mut rng).unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(keys, ["0", "1", "2", "0", "1", "2"]);
    }

    #[test]
    fn zipf_keys_stay_in_range_and_favour_key_zero() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut g = KeyGen::new(&KeySpec::Zipf { n: 50, s: 1.5 }, 0);
        let mut counts = [0u32; 50];
        for i in 0..20_000 {
            let k: usize = std::str::from_utf8(g.key(i, &mut rng).unwrap())
                .unwrap()
                .parse()
                .unwrap();
            counts[k] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10]);
    }

    #[test]
    fn none_gives_null_keys_and_sequential_gives_the_sequence() {
        let mut rng = SmallRng::seed_from_u64(1);
        assert!(KeyGen::new(&KeySpec::None, 0).key(5, &mut rng).is_none());
        assert_eq!(
            KeyGen::new(&KeySpec::Sequential, 0)
                .key(42, &mut rng)
                .unwrap(),
            b"42"
        );
    }
}
