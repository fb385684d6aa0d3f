//! Welch's t-test on two sets of per-interval samples (unequal variances, unequal sizes), as
//! latte and hyperfine's `welch_ttest.py` do. Only the arithmetic of the test lives here; the
//! Student-t CDF comes from statrs.
//!
//! Caveat, stated rather than hidden: neighbouring reporting intervals are autocorrelated, so
//! the samples are not fully independent and the p-value is somewhat optimistic. latte corrects
//! with an effective sample size; we keep the plain test and ask for a minimum size instead.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Fewer samples than this on either side: no test (a variance needs two, and two is noise).
pub const MIN_SAMPLES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    pub t: f64,
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// `None` when either side has fewer than `MIN_SAMPLES` samples.
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    if a.len() < MIN_SAMPLES || b.len() < MIN_SAMPLES {
        return None;
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let se2 = va / na + vb / nb;
    if se2 <= 0.0 {
        // Both sides constant: identical means are no difference, different ones are certain.
        let p = if ma == mb { 1.0 } else { 0.0 };
        return Some(Welch {
            t: if ma == mb { 0.0 } else { f64::INFINITY },
            df: na + nb - 2.0,
            p,
        });
    }
    let t = (ma - mb) / se2.sqrt();
    // Welch–Satterthwaite degrees of freedom.
    let df = se2.powi(2) / ((va / na).powi(2) / (na - 1.0) + (vb / nb).powi(2) / (nb - 1.0));
    let p = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => 2.0 * (1.0 - dist.cdf(t.abs())),
        Err(_) => return None,
    };
    Some(Welch {
        t,
        df,
        p: p.clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_textbook_example() {
        // Wikipedia, "Welch's t-test", example 1: t = -2.46, df = 24.99, p = 0.021.
        let a = [
            27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
            21.4,
        ];
        let b = [
            27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
            24.4,
        ];
        let w = welch(&a, &b).unwrap();
        assert!((w.t + 2.4553).abs() < 1e-3, "{w:?}");
        assert!((w.df - 24.99).abs() < 0.01, "{w:?}");
        assert!((w.p - 0.021).abs() < 1e-3, "{w:?}");
    }

    #[test]
    fn identical_samples_are_not_significant() {
        let a = [10.0, 11.0, 9.0, 10.5];
        assert!(welch(&a, &a).unwrap().p > 0.99);
    }

    #[test]
    fn too_few_samples_give_no_test() {
        assert!(welch(&[1.0, 2.0], &[1.0, 2.0, 3.0]).is_none());
    }

    #[test]
    fn constant_but_different_samples_are_certain() {
        assert_eq!(welch(&[5.0; 4], &[6.0; 4]).unwrap().p, 0.0);
    }
}
