//! Prometheus text from a node's `/metrics`: the Raft commit histogram, so a run can say how
//! much of a latency was the commit (propose to apply, with fsync).

/// Cumulative buckets `(le, count)` of histogram `name`, `+Inf` last.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, tail) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, tail.trim().parse().ok()?))
        })
        .collect()
}

/// `after - before`, bucket by bucket (both from the same node).
pub fn delta(after: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|(le, n)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|(_, c)| *c)
                .unwrap_or(0);
            (*le, n.saturating_sub(b))
        })
        .collect()
}

/// Sums histograms of several nodes bucket by bucket (same bucket bounds).
pub fn sum(hs: &[Vec<(f64, u64)>]) -> Vec<(f64, u64)> {
    let Some(first) = hs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .map(|(i, (le, _))| (*le, hs.iter().filter_map(|h| h.get(i)).map(|x| x.1).sum()))
        .collect()
}

/// Upper bound (`le`) of the bucket holding quantile `q`; `None` without observations.
pub fn quantile_le(h: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = h.last()?.1;
    if total == 0 {
        return None;
    }
    let need = (q * total as f64).ceil() as u64;
    h.iter().find(|(_, c)| *c >= need).map(|(le, _)| *le)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE x histogram\n\
        x_bucket{le=\"0.001\"} 10\n\
        x_bucket{le=\"0.005\"} 90\n\
        x_bucket{le=\"0.01\"} 99\n\
        x_bucket{le=\"+Inf\"} 100\n\
        x_sum 0.3\nx_count 100\n";

    /// Buckets parse in order; p50 falls in le=0.005, p99 in le=0.01, p100 in +Inf.
    #[test]
    fn parses_and_finds_quantiles() {
        let h = buckets(TEXT, "x");
        assert_eq!(h.len(), 4);
        assert_eq!(quantile_le(&h, 0.5), Some(0.005));
        assert_eq!(quantile_le(&h, 0.99), Some(0.01));
        assert_eq!(quantile_le(&h, 1.0), Some(f64::INFINITY));
        let d = delta(&h, &h);
        assert_eq!(quantile_le(&d, 0.5), None);
        let s = sum(&[h.clone(), h]);
        assert_eq!(s[3], (f64::INFINITY, 200));
    }
}
