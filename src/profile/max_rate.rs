//! The search for the highest rate whose thresholds hold: step the rate up by a factor until a
//! trial fails (or the maximum passes), then bisect between the last good and the first bad
//! rate until the bracket is narrow enough or the trials run out. The trial itself is a
//! closure, so the search is tested on a simulated latency curve.

use anyhow::Result;
use serde::Serialize;

use crate::profile::file::MaxRateDef;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trial {
    pub rate_per_sec: f64,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchResult {
    /// The highest rate that passed; None when even the start rate failed.
    pub knee_records_per_sec: Option<f64>,
    /// The lowest rate that failed, if any did.
    pub first_failing_records_per_sec: Option<f64>,
    pub trials: Vec<Trial>,
}

/// Runs the search; `trial(rate)` says whether the thresholds held at that rate.
pub fn search(
    cfg: &MaxRateDef,
    mut trial: impl FnMut(f64) -> Result<bool>,
) -> Result<SearchResult> {
    let mut trials = Vec::new();
    let mut run = |rate: f64, trials: &mut Vec<Trial>| -> Result<bool> {
        let passed = trial(rate)?;
        trials.push(Trial {
            rate_per_sec: rate,
            passed,
        });
        Ok(passed)
    };
    let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = cfg.start.min(cfg.max);
    while (trials.len() as u32) < cfg.max_trials {
        if run(rate, &mut trials)? {
            good = Some(rate);
            if rate >= cfg.max {
                break;
            }
            rate = (rate * cfg.factor).min(cfg.max);
        } else {
            bad = Some(rate);
            break;
        }
    }
    while let (Some(g), Some(b)) = (good, bad) {
        if (trials.len() as u32) >= cfg.max_trials || (b - g) / g <= cfg.precision {
            break;
        }
        let mid = ((g + b) / 2.0).round();
        if run(mid, &mut trials)? {
            good = Some(mid);
        } else {
            bad = Some(mid);
        }
    }
    Ok(SearchResult {
        knee_records_per_sec: good,
        first_failing_records_per_sec: bad,
        trials,
    })
}

/// Checks the settings before any trial runs.
pub fn validate(cfg: &MaxRateDef) -> Result<()> {
    if !(cfg.start > 0.0 && cfg.max >= cfg.start) {
        anyhow::bail!(
            "find_max_rate: need 0 < start <= max (got start {}, max {})",
            cfg.start,
            cfg.max
        );
    }
    if cfg.factor <= 1.0 {
        anyhow::bail!("find_max_rate.factor must be > 1 (got {})", cfg.factor);
    }
    if cfg.max_trials < 2 {
        anyhow::bail!("find_max_rate.max_trials must be at least 2");
    }
    if !(cfg.precision > 0.0 && cfg.precision < 1.0) {
        anyhow::bail!(
            "find_max_rate.precision must be between 0 and 1 (got {})",
            cfg.precision
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(start: f64, max: f64) -> MaxRateDef {
        MaxRateDef {
            start,
            max,
            factor: 2.0,
            step_duration: "1s".into(),
            max_trials: 12,
            precision: 0.05,
        }
    }

    /// A simulated system: p99 is flat until the knee, then climbs steeply.
    fn p99_ms(rate: f64) -> f64 {
        let knee = 37_000.0;
        if rate <= knee {
            2.0 + rate / 20_000.0
        } else {
            4.0 + (rate - knee) / 100.0
        }
    }

    #[test]
    fn finds_the_knee_of_a_simulated_latency_curve() {
        let r = search(&cfg(1000.0, 1e6), |rate| Ok(p99_ms(rate) < 10.0)).unwrap();
        let knee = r.knee_records_per_sec.unwrap();
        // The true limit is where p99 reaches 10 ms: 37,000 + 600.
        assert!((37_600.0 * 0.95..=37_600.0).contains(&knee), "knee {knee}");
        assert!(r.first_failing_records_per_sec.unwrap() > knee);
        assert!(r.trials.len() <= 12);
        // Stepped up 1k, 2k, ... 64k, then bisected.
        assert_eq!(
            r.trials[..7]
                .iter()
                .map(|t| t.rate_per_sec)
                .collect::<Vec<_>>(),
            [1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 64e3]
        );
    }

    #[test]
    fn stops_at_the_maximum_when_everything_passes_and_reports_none_when_nothing_does() {
        let r = search(&cfg(1000.0, 5000.0), |_| Ok(true)).unwrap();
        assert_eq!(r.knee_records_per_sec, Some(5000.0));
        assert_eq!(r.trials.len(), 4); // 1k, 2k, 4k, 5k
        let r = search(&cfg(1000.0, 5000.0), |_| Ok(false)).unwrap();
        assert_eq!((r.knee_records_per_sec, r.trials.len()), (None, 1));
    }

    #[test]
    fn the_trial_budget_bounds_the_search() {
        let mut c = cfg(1.0, 1e12);
        c.max_trials = 5;
        let r = search(&c, |rate| Ok(rate < 1e9)).unwrap();
        assert_eq!(r.trials.len(), 5);
    }
}
