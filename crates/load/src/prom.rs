//! Reading Prometheus text from the nodes, and what grew during a run.
//!
//! The load tool reports costs that only the servers can see: replication
//! messages and bytes, replication lag. They are counters (and histogram
//! buckets, which are counters too) on each node's `/metrics`, so the cost of
//! a run is how much they *grew* while it ran. Two things make "after minus
//! before" wrong in this lab, and [`Growth`] handles both:
//!
//! - a node killed during the run has no "after" (its traffic until the
//!   kill would be missed), so the run scrapes every node about once a
//!   second and keeps, per node, the growth seen up to its last answer;
//! - a restarted node starts its counters from zero again, so a value
//!   lower than the previous one is a reset: the growth since then is the
//!   new value itself.
//!
//! The parser reads the plain text exposition format: one
//! `name{labels} value` sample a line; comments and malformed lines are
//! skipped (never an error: a scrape is best-effort evidence, not a
//! contract).

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn matches(&self, name: &str, filter: &[(&str, &str)]) -> bool {
        self.name == name && filter.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// `k="v",k2="v2"` (values may hold commas and escaped quotes).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.push((key.trim().to_owned(), value));
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(out)
}

/// Every sample of one scrape, by series (`name{labels}` as written).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub series: BTreeMap<String, Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut series = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, name, labels, rest) = match line.find('{') {
                Some(i) => match line.rfind('}') {
                    Some(j) if j > i => match parse_labels(&line[i + 1..j]) {
                        Some(labels) => (&line[..=j], &line[..i], labels, &line[j + 1..]),
                        None => continue,
                    },
                    _ => continue,
                },
                None => match line.split_once(' ') {
                    Some((s, r)) => (s, s, Vec::new(), r),
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
                series.insert(
                    key.to_owned(),
                    Sample {
                        name: name.to_owned(),
                        labels,
                        value,
                    },
                );
            }
        }
        Scrape { series }
    }

    /// The sum of the samples named `name` whose labels include `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.series
            .values()
            .filter(|s| s.matches(name, filter))
            .fold(0.0, |sum, s| sum + s.value)
    }

    /// The q-quantile of the histogram `name` (its `name_bucket{le=..}`
    /// series summed over every other label), interpolating linearly
    /// within a bucket, as Prometheus' `histogram_quantile` does.
    pub fn histogram_quantile(&self, name: &str, q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        // le (as an ordered integer key) -> (le, cumulative count)
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.series.values().filter(|s| s.name == bucket) {
            let le = match s.label("le") {
                Some("+Inf") => f64::INFINITY,
                Some(v) => match v.parse::<f64>() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
                None => continue,
            };
            let key = if le.is_infinite() {
                u64::MAX
            } else {
                (le * 1e9) as u64
            };
            buckets.entry(key).or_insert((le, 0.0)).1 += s.value;
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

/// How much every counter of several targets grew over a run; see the
/// module docs. Only meaningful for counters and histogram buckets.
#[derive(Debug, Clone, Default)]
pub struct Growth {
    last: BTreeMap<String, Scrape>,
    /// Growth per target and series, as a scrape of its own.
    grown: BTreeMap<String, Scrape>,
}

impl Growth {
    /// Start from the targets' values now: growth counts from here.
    pub fn baseline(scrapes: impl IntoIterator<Item = (String, Scrape)>) -> Growth {
        Growth {
            last: scrapes.into_iter().collect(),
            grown: BTreeMap::new(),
        }
    }

    /// A new scrape of `target`. A target with no baseline (it was down at
    /// the start, so it started during the run) grows by all it has.
    pub fn observe(&mut self, target: &str, now: Scrape) {
        let empty = Scrape::default();
        let before = self.last.get(target).unwrap_or(&empty);
        let grown = self.grown.entry(target.to_owned()).or_default();
        for (key, s) in &now.series {
            let old = before.series.get(key).map_or(0.0, |b| b.value);
            let inc = if s.value >= old {
                s.value - old
            } else {
                s.value
            };
            // A series that did not grow stays, at 0: a histogram's
            // quantile interpolates from the bucket below, so dropping an
            // empty bucket would widen the one above it.
            grown
                .series
                .entry(key.clone())
                .or_insert_with(|| Sample {
                    value: 0.0,
                    ..s.clone()
                })
                .value += inc;
        }
        self.last.insert(target.to_owned(), now);
    }

    /// The growth of every target together, as one scrape.
    pub fn total(&self) -> Scrape {
        let mut total = Scrape::default();
        for (target, scrape) in &self.grown {
            for (key, s) in &scrape.series {
                total.series.insert(format!("{target}/{key}"), s.clone());
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP x_total things
# TYPE x_total counter
x_total{peer="node-2",direction="sent"} 3
x_total{peer="node-3",direction="sent"} 4
x_total{peer="node-3",direction="received"} 10
y 1.5
garbage line here
odd{path="/a,b",note="say \"hi\""} 2
lag_seconds_bucket{peer="a",le="0.001"} 50
lag_seconds_bucket{peer="a",le="0.005"} 90
lag_seconds_bucket{peer="a",le="+Inf"} 100
lag_seconds_count{peer="a"} 100
"#;

    #[test]
    fn sums_series_by_label_and_skips_garbage() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.sum("x_total", &[]), 17.0);
        assert_eq!(s.sum("x_total", &[("direction", "sent")]), 7.0);
        assert_eq!(
            s.sum("x_total", &[("direction", "sent"), ("peer", "node-3")]),
            4.0
        );
        assert_eq!(s.sum("y", &[]), 1.5);
        assert!(s.sum("missing", &[]).is_sign_positive(), "0, not -0");
        assert_eq!(
            s.sum("odd", &[("path", "/a,b"), ("note", "say \"hi\"")]),
            2.0
        );
    }

    #[test]
    fn histogram_quantiles_interpolate() {
        let s = Scrape::parse(TEXT);
        let p50 = s.histogram_quantile("lag_seconds", 0.5).unwrap();
        assert!((p50 - 0.001).abs() < 1e-9);
        let p70 = s.histogram_quantile("lag_seconds", 0.7).unwrap();
        assert!(p70 > 0.001 && p70 < 0.005);
        assert_eq!(
            Scrape::default().histogram_quantile("lag_seconds", 0.5),
            None
        );
    }

    #[test]
    fn growth_survives_a_kill_and_a_restart() {
        let at = |v: u32| Scrape::parse(&format!("m_total{{direction=\"sent\"}} {v}\n"));
        let mut g = Growth::baseline([("n1".to_owned(), at(100)), ("n2".to_owned(), at(50))]);
        g.observe("n1", at(110));
        g.observe("n2", at(70)); // n2's last answer before it is killed
        g.observe("n1", at(130));
        // n2 restarted: its counter begins again at 0.
        g.observe("n2", at(5));
        // n3 was not up at the start: all of it is growth.
        g.observe("n3", at(9));
        let t = g.total();
        assert_eq!(
            t.sum("m_total", &[("direction", "sent")]),
            30.0 + 25.0 + 9.0
        );
    }

    #[test]
    fn growth_of_a_histogram_gives_the_runs_quantile() {
        let before = Scrape::parse(
            "h_bucket{le=\"0.001\"} 1000\nh_bucket{le=\"0.1\"} 1000\nh_bucket{le=\"+Inf\"} 1000\n",
        );
        let after = Scrape::parse(
            "h_bucket{le=\"0.001\"} 1000\nh_bucket{le=\"0.1\"} 1010\nh_bucket{le=\"+Inf\"} 1010\n",
        );
        let mut g = Growth::baseline([("n".to_owned(), before)]);
        g.observe("n", after.clone());
        // Everything in the run was above 1 ms, though most of the history was not.
        let p50 = g.total().histogram_quantile("h", 0.5).unwrap();
        assert!(p50 > 0.001, "{p50}");
        // Half way through the (0.001, 0.1] bucket, which starts at 0.001.
        assert!((p50 - 0.0505).abs() < 1e-9, "{p50}");
        assert!(after.histogram_quantile("h", 0.5).unwrap() <= 0.001);
    }
}
