//! Counting what happened, overall and second by second.
//!
//! Every simulated user owns a [`Recorder`] (no locks on the request path);
//! at the end they are merged. Latency goes into HdrHistograms (microsecond
//! resolution, 3 significant digits), so p99 and p99.9 are exact to the
//! histogram's precision rather than estimated from samples. The timeline
//! keeps one bucket per interval, so a report can show latency and errors
//! around the moment a fault was injected; a bucket keeps its few
//! latencies as samples until it has many ([`Latencies`]), so the memory
//! of a run grows with its requests, not with users times seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::model::Findings;

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The TCP connection could not be made (the LB is down).
    Connect,
    /// No answer within the request timeout.
    Timeout,
    /// The server answered 5xx (a dead backend behind the LB, a store down).
    Http5xx,
    /// An unexpected 4xx (e.g. 409 from a compare-and-set conflict, 413).
    Http4xx,
    /// Anything else: a broken connection, an unreadable body.
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Http5xx,
        ErrorKind::Http4xx,
        ErrorKind::Other,
    ];
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Samples a timeline bucket keeps as they are before it takes a histogram.
const SAMPLES_BEFORE_HISTOGRAM: usize = 1024;

/// The latencies of one timeline bucket: the samples themselves while
/// there are few, an HdrHistogram once there are many. A histogram over
/// 1 µs..60 s at 3 digits is about 130 KB; one for every user and second
/// of a run (the users' own timelines, merged at the end) would be most of
/// the tool's memory, while a user sends a handful of requests a second.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    samples: Vec<u32>,
    histogram: Option<Box<Histogram<u64>>>,
}

impl Latencies {
    /// One latency in µs (1..=60 s, as the histogram's bounds).
    fn record(&mut self, us: u64) {
        let us = us.clamp(1, 60_000_000);
        match &mut self.histogram {
            Some(h) => {
                let _ = h.record(us);
            }
            None if self.samples.len() < SAMPLES_BEFORE_HISTOGRAM => self.samples.push(us as u32),
            None => {
                let _ = self.histogram_mut().record(us);
            }
        }
    }

    /// The histogram, taking in the samples kept so far.
    fn histogram_mut(&mut self) -> &mut Histogram<u64> {
        let samples = std::mem::take(&mut self.samples);
        self.histogram.get_or_insert_with(|| {
            let mut h = histogram();
            for us in samples {
                let _ = h.record(u64::from(us));
            }
            Box::new(h)
        })
    }

    fn add(&mut self, o: &Latencies) {
        if let Some(h) = &o.histogram {
            let _ = self.histogram_mut().add(h.as_ref());
        }
        for us in &o.samples {
            self.record(u64::from(*us));
        }
    }

    /// Whether a histogram was taken (tests: the memory it costs).
    pub fn has_histogram(&self) -> bool {
        self.histogram.is_some()
    }

    /// Latency in milliseconds at a quantile, as [`quantile_ms`] of a
    /// histogram of the same latencies.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        match &self.histogram {
            Some(h) => quantile_ms(h, q),
            None if self.samples.is_empty() => 0.0,
            None => {
                let mut h = histogram();
                for us in &self.samples {
                    let _ = h.record(u64::from(*us));
                }
                quantile_ms(&h, q)
            }
        }
    }
}

/// One interval of the timeline.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub requests: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub latency_us: Latencies,
    pub served_by: BTreeMap<String, u64>,
    pub sessions_lost: u64,
    pub stale_reads: u64,
}

/// Everything one user (or, merged, the whole run) observed.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub bucket: Duration,
    pub timeline: Vec<Bucket>,
    pub latency_us: Histogram<u64>,
    pub requests: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub served_by: BTreeMap<String, u64>,
    pub sessions_lost: u64,
    pub stale_reads: u64,
    pub stale_writes: u64,
    pub logins: u64,
    /// Bytes of credentials (Cookie or Authorization header values) sent.
    pub credential_bytes: u64,
    /// Requests that carried a credential.
    pub credentialed_requests: u64,
    /// Times a user's requests moved to another node than the previous one.
    pub node_switches: u64,
}

impl Recorder {
    pub fn new(bucket: Duration) -> Self {
        Recorder {
            bucket,
            timeline: Vec::new(),
            latency_us: histogram(),
            requests: 0,
            errors: BTreeMap::new(),
            served_by: BTreeMap::new(),
            sessions_lost: 0,
            stale_reads: 0,
            stale_writes: 0,
            logins: 0,
            credential_bytes: 0,
            credentialed_requests: 0,
            node_switches: 0,
        }
    }

    fn bucket_at(&mut self, at: Duration) -> &mut Bucket {
        let i = (at.as_micros() / self.bucket.as_micros().max(1)) as usize;
        // The run is bounded in time, so the timeline is too.
        if self.timeline.len() <= i {
            self.timeline.resize_with(i + 1, Bucket::default);
        }
        &mut self.timeline[i]
    }

    /// A request that got an HTTP answer (any status).
    pub fn answered(&mut self, at: Duration, latency: Duration, served_by: Option<&str>) {
        let us = (latency.as_micros() as u64).clamp(1, 60_000_000);
        self.requests += 1;
        let _ = self.latency_us.record(us);
        if let Some(node) = served_by {
            *self.served_by.entry(node.to_owned()).or_default() += 1;
        }
        let b = self.bucket_at(at);
        b.requests += 1;
        b.latency_us.record(us);
        if let Some(node) = served_by {
            *b.served_by.entry(node.to_owned()).or_default() += 1;
        }
    }

    /// A request that failed (`answered` is also called when an HTTP status
    /// came back, e.g. a 503).
    pub fn failed(&mut self, at: Duration, kind: ErrorKind, got_answer: bool) {
        if !got_answer {
            self.requests += 1;
        }
        *self.errors.entry(kind).or_default() += 1;
        let b = self.bucket_at(at);
        if !got_answer {
            b.requests += 1;
        }
        *b.errors.entry(kind).or_default() += 1;
    }

    pub fn findings(&mut self, at: Duration, f: Findings) {
        if f.session_lost {
            self.sessions_lost += 1;
            self.bucket_at(at).sessions_lost += 1;
        }
        if f.stale_read {
            self.stale_reads += 1;
            self.bucket_at(at).stale_reads += 1;
        }
        if f.stale_write {
            self.stale_writes += 1;
        }
    }

    pub fn credential(&mut self, bytes: usize) {
        if bytes > 0 {
            self.credential_bytes += bytes as u64;
            self.credentialed_requests += 1;
        }
    }

    /// Add another recorder's counts to this one.
    pub fn merge(&mut self, o: &Recorder) {
        let _ = self.latency_us.add(&o.latency_us);
        self.requests += o.requests;
        for (k, v) in &o.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        for (k, v) in &o.served_by {
            *self.served_by.entry(k.clone()).or_default() += v;
        }
        self.sessions_lost += o.sessions_lost;
        self.stale_reads += o.stale_reads;
        self.stale_writes += o.stale_writes;
        self.logins += o.logins;
        self.credential_bytes += o.credential_bytes;
        self.credentialed_requests += o.credentialed_requests;
        self.node_switches += o.node_switches;
        if self.timeline.len() < o.timeline.len() {
            self.timeline.resize_with(o.timeline.len(), Bucket::default);
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&o.timeline) {
            mine.requests += theirs.requests;
            mine.latency_us.add(&theirs.latency_us);
            for (k, v) in &theirs.errors {
                *mine.errors.entry(*k).or_default() += v;
            }
            for (k, v) in &theirs.served_by {
                *mine.served_by.entry(k.clone()).or_default() += v;
            }
            mine.sessions_lost += theirs.sessions_lost;
            mine.stale_reads += theirs.stale_reads;
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Latency in milliseconds at a quantile (0 when nothing was recorded).
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_timelines() {
        let mut a = Recorder::new(Duration::from_secs(1));
        let mut b = Recorder::new(Duration::from_secs(1));
        a.answered(
            Duration::from_millis(100),
            Duration::from_millis(2),
            Some("node-1"),
        );
        b.answered(
            Duration::from_millis(2500),
            Duration::from_millis(8),
            Some("node-2"),
        );
        b.failed(Duration::from_millis(2600), ErrorKind::Connect, false);
        b.findings(
            Duration::from_millis(2600),
            Findings {
                session_lost: true,
                ..Default::default()
            },
        );
        a.merge(&b);
        assert_eq!(a.requests, 3);
        assert_eq!(a.error_total(), 1);
        assert_eq!(a.timeline.len(), 3);
        assert_eq!(a.timeline[2].requests, 2);
        assert_eq!(a.timeline[2].sessions_lost, 1);
        assert_eq!(a.served_by["node-2"], 1);
        assert!(quantile_ms(&a.latency_us, 1.0) >= 7.9);
    }

    #[test]
    fn a_bucket_keeps_few_latencies_as_samples_and_many_in_a_histogram() {
        let mut few = Recorder::new(Duration::from_secs(1));
        for ms in 1..=20 {
            few.answered(Duration::ZERO, Duration::from_millis(ms), None);
        }
        let b = &few.timeline[0].latency_us;
        assert!(!b.has_histogram());
        // The same quantiles as the histogram of the same latencies.
        for q in [0.5, 0.99, 1.0] {
            assert_eq!(b.quantile_ms(q), quantile_ms(&few.latency_us, q));
        }
        // Merged from many users, a bucket takes a histogram, and loses
        // none of the samples it had.
        let mut total = Recorder::new(Duration::from_secs(1));
        for _ in 0..60 {
            total.merge(&few);
        }
        let b = &total.timeline[0].latency_us;
        assert!(b.has_histogram());
        assert_eq!(total.timeline[0].requests, 1200);
        for q in [0.5, 0.99, 1.0] {
            assert_eq!(b.quantile_ms(q), quantile_ms(&total.latency_us, q));
        }
    }

    #[test]
    fn an_answered_5xx_counts_once_as_a_request() {
        let mut r = Recorder::new(Duration::from_secs(1));
        r.answered(Duration::ZERO, Duration::from_millis(1), None);
        r.failed(Duration::ZERO, ErrorKind::Http5xx, true);
        assert_eq!(r.requests, 1);
        assert_eq!(r.errors[&ErrorKind::Http5xx], 1);
    }
}
