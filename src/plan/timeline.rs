//! The run's timeline: its phases in order, each with a rate and a bound, as data.
//!
//! A phase is reported on its own (its own histograms); an `excluded` phase (the warm-up) is
//! kept in the time series but left out of the summary. Every phase but the last is bounded by
//! time, so phase boundaries are known in advance; the one exception is Kafka's
//! `--warmup-records`, where the first phase ends after a number of records at the same rate.
//! The schedule itself is run by `load::producer`; this module only describes and validates.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Serialize;

/// One phase of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseSpec {
    pub name: String,
    /// Left out of the summary (warm-up).
    pub excluded: bool,
    /// Records/s over all producers; `None` = closed model.
    pub rate: Option<f64>,
    /// `None` only for the last phase (bounded by records, or by Ctrl-C).
    pub duration_ms: Option<u64>,
    /// Consumers stop fetching during this phase (a backlog builds up).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pause_consumers: bool,
    /// Matrix parameters or ramp step figures shown with the phase's results.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl PhaseSpec {
    pub fn new(name: &str, rate: Option<f64>, duration_ms: Option<u64>) -> Self {
        PhaseSpec {
            name: name.to_string(),
            excluded: false,
            rate,
            duration_ms,
            pause_consumers: false,
            params: BTreeMap::new(),
        }
    }

    pub fn warmup(rate: Option<f64>, duration_ms: Option<u64>) -> Self {
        PhaseSpec {
            excluded: true,
            ..PhaseSpec::new("warmup", rate, duration_ms)
        }
    }
}

/// The phases and the record bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub phases: Vec<PhaseSpec>,
    /// Kafka's `--warmup-records`: phase 0 ends after this many records (all producers).
    pub warmup_records: Option<u64>,
    /// Total records over all phases and producers.
    pub max_records: Option<u64>,
}

/// A stretch of the schedule at one rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start_offset_ns: u64,
    pub end_offset_ns: Option<u64>,
    pub rate: Option<f64>,
    /// The phase its records belong to (with `warmup_records`, the first phase until then).
    pub phase: usize,
}

impl Timeline {
    /// Checks the shape; errors name what to fix.
    pub fn validate(&self) -> Result<()> {
        if self.phases.is_empty() {
            bail!("a run needs at least one phase");
        }
        if self.phases.len() > 127 {
            bail!(
                "a run has at most 127 phases (ramp steps included); got {}",
                self.phases.len()
            );
        }
        let open = self.phases[0].rate.is_some();
        for (i, p) in self.phases.iter().enumerate() {
            if p.rate.is_some() != open {
                bail!(
                    "phase '{}': every phase needs a rate, or none does (closed model)",
                    p.name
                );
            }
            if p.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                bail!("phase '{}': rate must be > 0 records/s", p.name);
            }
            let last = i + 1 == self.phases.len();
            let split_warmup = i == 0 && self.warmup_records.is_some();
            if p.duration_ms.is_none() && !last && !split_warmup {
                bail!("phase '{}' needs a duration: only the last phase may run until a record count or Ctrl-C", p.name);
            }
            if p.duration_ms == Some(0) {
                bail!("phase '{}': duration must be longer than zero", p.name);
            }
        }
        if self.warmup_records.is_some()
            && (self.phases.len() != 2 || self.phases[0].rate != self.phases[1].rate)
        {
            bail!(
                "--warmup-records splits one phase at one rate; use a warm-up duration with ramps"
            );
        }
        Ok(())
    }

    /// The rate stretches of the schedule, with offsets from the run's start.
    pub fn segments(&self) -> Vec<Segment> {
        if self.warmup_records.is_some() {
            let p = &self.phases[1];
            return vec![Segment {
                start_offset_ns: 0,
                end_offset_ns: p.duration_ms.map(|d| d * 1_000_000),
                rate: p.rate,
                phase: 0,
            }];
        }
        let mut at = 0u64;
        self.phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let s = Segment {
                    start_offset_ns: at,
                    end_offset_ns: p.duration_ms.map(|d| at + d * 1_000_000),
                    rate: p.rate,
                    phase: i,
                };
                at += p.duration_ms.unwrap_or(0) * 1_000_000;
                s
            })
            .collect()
    }

    /// The whole planned duration, if every phase has one.
    pub fn total_ms(&self) -> Option<u64> {
        self.phases.iter().map(|p| p.duration_ms).sum()
    }

    pub fn open_model(&self) -> bool {
        self.phases.first().is_some_and(|p| p.rate.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_phases_follow_each_other() {
        let t = Timeline {
            phases: vec![
                PhaseSpec::warmup(Some(10.0), Some(1000)),
                PhaseSpec::new("a", Some(20.0), Some(2000)),
                PhaseSpec::new("b", Some(30.0), None),
            ],
            warmup_records: None,
            max_records: Some(100),
        };
        t.validate().unwrap();
        let s = t.segments();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[1].start_offset_ns, s[1].end_offset_ns),
            (1_000_000_000, Some(3_000_000_000))
        );
        assert_eq!(
            (s[2].start_offset_ns, s[2].end_offset_ns, s[2].phase),
            (3_000_000_000, None, 2)
        );
    }

    #[test]
    fn warmup_records_share_one_segment() {
        let t = Timeline {
            phases: vec![
                PhaseSpec::warmup(Some(5.0), None),
                PhaseSpec::new("measured", Some(5.0), None),
            ],
            warmup_records: Some(10),
            max_records: Some(50),
        };
        t.validate().unwrap();
        assert_eq!(t.segments().len(), 1);
    }

    #[test]
    fn fails_when_an_inner_phase_has_no_duration_or_models_mix() {
        let t = Timeline {
            phases: vec![
                PhaseSpec::new("a", Some(1.0), None),
                PhaseSpec::new("b", Some(1.0), None),
            ],
            warmup_records: None,
            max_records: None,
        };
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("phase 'a' needs a duration"));
        let t = Timeline {
            phases: vec![
                PhaseSpec::new("a", Some(1.0), Some(5)),
                PhaseSpec::new("b", None, None),
            ],
            warmup_records: None,
            max_records: None,
        };
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("every phase needs a rate"));
    }
}
