//! Reading Prometheus text from the nodes and the LB.
//!
//! The load tool reports costs that only the servers can see: replication
//! messages and bytes, replication lag, memory. It scrapes each `/metrics`
//! endpoint before and after the run and reports the difference. The parser
//! reads the plain text exposition format: one `name{labels} value` sample a
//! line; comments and malformed lines are skipped (never an error: a scrape
//! is best-effort evidence, not a contract).

use std::collections::BTreeMap;

/// Sums of samples by metric name (labels folded together).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub sums: BTreeMap<String, f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut sums = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, rest) = match line.find('{') {
                Some(i) => match line[i..].find('}') {
                    Some(j) => (&line[..i], &line[i + j + 1..]),
                    None => continue,
                },
                None => match line.split_once(' ') {
                    Some((s, r)) => (s, r),
                    None => continue,
                },
            };
            let Some(value) = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            if value.is_finite() {
                *sums.entry(series.to_owned()).or_insert(0.0) += value;
            }
        }
        Scrape { sums }
    }

    pub fn get(&self, name: &str) -> f64 {
        self.sums.get(name).copied().unwrap_or(0.0)
    }

    /// Add another scrape's sums (to total several nodes).
    pub fn add(&mut self, o: &Scrape) {
        for (k, v) in &o.sums {
            *self.sums.entry(k.clone()).or_insert(0.0) += v;
        }
    }

    /// `self - before`, name by name.
    pub fn delta(&self, before: &Scrape) -> Scrape {
        let mut sums = self.sums.clone();
        for (k, v) in sums.iter_mut() {
            *v -= before.get(k);
        }
        Scrape { sums }
    }

    /// The p-quantile of a Prometheus histogram `name` (from its
    /// `name_bucket{le=..}` series), by linear interpolation within buckets.
    pub fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some(le_at) = rest.find("le=\"") else {
                continue;
            };
            let le_str = &rest[le_at + 4..];
            let Some(end) = le_str.find('"') else {
                continue;
            };
            let le = match &le_str[..end] {
                "+Inf" => f64::INFINITY,
                s => match s.parse::<f64>() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            // Sum the same bucket across label sets (peers).
            let key = if le.is_infinite() {
                u64::MAX
            } else {
                (le * 1e9) as u64
            };
            buckets.entry(key).or_insert((le, 0.0)).1 += v;
        }
        let total = buckets.values().last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut prev = (0.0, 0.0);
        for (le, count) in buckets.values() {
            if *count >= rank {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let span = count - prev.1;
                let frac = if span > 0.0 {
                    (rank - prev.1) / span
                } else {
                    1.0
                };
                return Some(prev.0 + (le - prev.0) * frac);
            }
            prev = (*le, *count);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP x_total things
# TYPE x_total counter
x_total{peer="node-2"} 3
x_total{peer="node-3"} 4
y 1.5
garbage line here
lag_seconds_bucket{peer="a",le="0.001"} 50
lag_seconds_bucket{peer="a",le="0.005"} 90
lag_seconds_bucket{peer="a",le="+Inf"} 100
lag_seconds_count{peer="a"} 100
"#;

    #[test]
    fn sums_series_and_skips_garbage() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.get("x_total"), 7.0);
        assert_eq!(s.get("y"), 1.5);
        assert_eq!(s.get("missing"), 0.0);
        let before = Scrape::parse("x_total 2\n");
        assert_eq!(s.delta(&before).get("x_total"), 5.0);
    }

    #[test]
    fn histogram_quantiles_interpolate() {
        let p50 = Scrape::histogram_quantile(TEXT, "lag_seconds", 0.5).unwrap();
        assert!((p50 - 0.001).abs() < 1e-9);
        let p70 = Scrape::histogram_quantile(TEXT, "lag_seconds", 0.7).unwrap();
        assert!(p70 > 0.001 && p70 < 0.005);
        assert_eq!(Scrape::histogram_quantile("", "lag_seconds", 0.5), None);
    }
}
