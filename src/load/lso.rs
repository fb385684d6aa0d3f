//! The consumer's LSO lag from librdkafka's statistics: per partition the high watermark
//! (`hi_offset`) and the last stable offset (`ls_offset`, the end a read_committed reader may
//! read to) of the last fetch response. Their difference is how far open transactions hold
//! the reader back; Kafka's broker exports the same figure as `LastStableOffsetLag`.
//!
//! Parsed once per `statistics.interval.ms` off the hot path; nothing else reads the JSON.

use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    topics: HashMap<String, TopicStats>,
}

#[derive(Deserialize)]
struct TopicStats {
    #[serde(default)]
    partitions: HashMap<String, PartitionStats>,
}

#[derive(Deserialize)]
struct PartitionStats {
    partition: i32,
    #[serde(default = "unknown")]
    hi_offset: i64,
    #[serde(default = "unknown")]
    ls_offset: i64,
}

fn unknown() -> i64 {
    -1
}

/// Sum of `hi_offset - ls_offset` over the partitions whose offsets are known (the internal
/// partition -1 and partitions not fetched yet are left out); `None` when none is known.
pub fn lso_lag(json: &[u8]) -> Option<u64> {
    let stats: Stats = serde_json::from_slice(json).ok()?;
    let known: Vec<i64> = stats
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.partition >= 0 && p.hi_offset >= 0 && p.ls_offset >= 0)
        .map(|p| (p.hi_offset - p.ls_offset).max(0))
        .collect();
    (!known.is_empty()).then(|| known.iter().sum::<i64>() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_high_watermark_minus_the_last_stable_offset_over_known_partitions() {
        let json = br#"{"name":"c","topics":{"t":{"partitions":{
            "0":{"partition":0,"hi_offset":120,"ls_offset":100},
            "1":{"partition":1,"hi_offset":50,"ls_offset":50},
            "2":{"partition":2,"hi_offset":-1,"ls_offset":-1},
            "-1":{"partition":-1,"hi_offset":9,"ls_offset":0}}}}}"#;
        assert_eq!(lso_lag(json), Some(20));
        assert_eq!(lso_lag(br#"{"topics":{}}"#), None);
        assert_eq!(lso_lag(b"not json"), None);
    }
}
