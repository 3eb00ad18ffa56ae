//! One value out of a Prometheus text exposition (`GET /metrics`).
//!
//! Tests assert on counters and gauges by their series: the metric name, or
//! the name with its labels exactly as the process prints them
//! (`sessionlab_replication_rejected_total{node="node-1",reason="bad_signature"}`).
//! A name without labels stands for the first sample of that metric, whatever
//! its labels (a process labels everything with its node id). Names are
//! matched whole, never as a prefix, so `foo` does not find `foo_total`.

/// The value of the sample `series` (`name` or `name{labels}`) in `text`,
/// if it is there.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = split_sample(l)?;
        let hit =
            name == series || (!series.contains('{') && name.split('{').next() == Some(series));
        hit.then(|| value.parse().ok()).flatten()
    })
}

/// `GET url` (a `/metrics` endpoint) and the value of `series`; panics
/// with the whole exposition if the series is missing.
pub async fn scrape(client: &reqwest::Client, url: &str, series: &str) -> f64 {
    let text = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    sample(&text, series).unwrap_or_else(|| panic!("{series} not in {url}:\n{text}"))
}

/// `name{labels} value [timestamp]` -> (`name{labels}`, `value`).
fn split_sample(line: &str) -> Option<(&str, &str)> {
    let end = match line.find('{') {
        Some(open) if line[..open].find(' ').is_none() => open + line[open..].find('}')? + 1,
        _ => line.find(' ')?,
    };
    let value = line[end..].split_whitespace().next()?;
    Some((&line[..end], value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP foo_total Foos.\n# TYPE foo_total counter\n\
        foo_total 3\nfoo 1.5\n\
        bar_total{node=\"node-1\",reason=\"a b\"} 7\n\
        bar_total{node=\"node-2\",reason=\"c\"} 9 1700000000\n";

    #[test]
    fn series_are_matched_whole_with_or_without_labels() {
        assert_eq!(sample(TEXT, "foo"), Some(1.5));
        assert_eq!(sample(TEXT, "foo_total"), Some(3.0));
        assert_eq!(
            sample(TEXT, r#"bar_total{node="node-1",reason="a b"}"#),
            Some(7.0)
        );
        assert_eq!(
            sample(TEXT, r#"bar_total{node="node-2",reason="c"}"#),
            Some(9.0)
        );
        assert_eq!(sample(TEXT, "bar_total"), Some(7.0), "any labels");
        assert_eq!(sample(TEXT, r#"bar_total{node="node-3"}"#), None);
        assert_eq!(sample(TEXT, "fo"), None);
        assert_eq!(sample(TEXT, "bar"), None);
    }
}
