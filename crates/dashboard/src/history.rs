//! The last five minutes of each backend's traffic, for the dashboard's
//! charts: requests per second and the 99th-percentile response latency.
//!
//! The LB keeps totals since start per backend: a request counter and a
//! latency histogram, both served by `GET /admin/v1/latency` on its admin
//! API (the histogram in HdrHistogram's V2 serialization). A chart wants
//! *windows*: how many requests in this second, how slow was the slowest
//! 1% of *them*. So a sampler task ([`run`]) reads every backend once per
//! [`INTERVAL`] and keeps the differences:
//!
//! - requests/s = (requests now - requests at the last sample) / elapsed;
//! - p99 = the 99th percentile of (histogram now - histogram at the last
//!   sample), HdrHistogram's `subtract`. Percentiles cannot be averaged or
//!   differenced, but histograms can, so this is the true p99 of the
//!   requests answered in that window, not an approximation. A window
//!   without requests has no p99 (a gap in the line, not a zero).
//!
//! Memory is bounded: [`SAMPLES`] points per backend, and a backend that
//! leaves the table leaves the history at the next sample. A backend that
//! is removed and added again under the same id starts from zero counters;
//! a counter that went backwards is read as such a restart.
//!
//! The sampling costs the LB one histogram merge and serialization per
//! backend per second, off its forwarding path. A sample the LB does not
//! answer is skipped; the next one covers the longer window.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sessionlab_shutdown::Every;
use sessionlab_wire::clock::unix_ms;
use tokio::sync::watch;

use crate::fetch::LbAdmin;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Points kept per backend: five minutes at one per second.
pub const SAMPLES: usize = 300;

/// One window of one backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// End of the window, Unix milliseconds.
    pub at_ms: u64,
    pub requests_per_sec: f64,
    /// `None` when no request was answered in the window.
    pub p99_ms: Option<f64>,
}

struct Series {
    last_requests: u64,
    last_latency: Histogram<u64>,
    points: VecDeque<Point>,
}

struct Inner {
    series: BTreeMap<Arc<str>, Series>,
    last_sample: Option<Instant>,
}

/// Per-backend windows, newest last.
pub struct History {
    inner: Mutex<Inner>,
}

impl Default for History {
    fn default() -> Self {
        History {
            inner: Mutex::new(Inner {
                series: BTreeMap::new(),
                last_sample: None,
            }),
        }
    }
}

/// One backend's totals at a sample: (id, requests, latency histogram).
pub type Reading = (Arc<str>, u64, Histogram<u64>);

/// The readings in the LB's `GET /admin/v1/latency` answer.
pub fn readings(answer: &Value) -> Result<Vec<Reading>, String> {
    let list = answer["backends"]
        .as_array()
        .ok_or("no \"backends\" list")?;
    // The LB's table holds at most as many backends as the view keeps.
    list.iter()
        .take(crate::cluster_view::MAX_NODES)
        .map(|b| {
            let id = b["id"].as_str().ok_or("a backend without an id")?;
            let requests = b["requests"].as_u64().ok_or("a backend without requests")?;
            let bytes = BASE64
                .decode(
                    b["histogram"]
                        .as_str()
                        .ok_or("a backend without a histogram")?,
                )
                .map_err(|e| format!("histogram of {id}: {e}"))?;
            check_header(&bytes).map_err(|e| format!("histogram of {id}: {e}"))?;
            let latency: Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| format!("histogram of {id}: {e:?}"))?;
            Ok((Arc::from(id), requests, latency))
        })
        .collect()
}

/// The V2 serialization's header: cookie, payload length, normalizing
/// offset, significant digits (4 bytes each), lowest and highest value and
/// the conversion ratio (8 bytes each).
const V2_HEADER: usize = 40;
/// The uncompressed V2 cookie as the `hdrhistogram` crate writes it (the
/// format's base cookie with its word-size bits).
const V2_COOKIE: u32 = 0x1c84_9313;
/// The LB's histograms: 1 µs to 60 s at 2 significant digits; a little
/// room above both for another LB version.
const MAX_DIGITS: u32 = 3;
const MAX_HIGHEST: u64 = 3_600_000_000;

/// Refuse a histogram whose header does not describe its own bytes before
/// the decoder sees it. The decoder trusts the header: it sizes the
/// histogram by the digits and the highest value and a buffer by the
/// payload length (up to 4 GiB) before it reads a byte of the payload, so a
/// 40-byte answer from whatever answers at `--lb-admin` could make it
/// allocate gigabytes, every second.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    let word = |at: usize| -> u32 {
        u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    if bytes.len() < V2_HEADER {
        return Err(format!("{} bytes, shorter than its header", bytes.len()));
    }
    if word(0) != V2_COOKIE {
        return Err(format!(
            "not an uncompressed V2 histogram (cookie {:#x})",
            word(0)
        ));
    }
    let payload = word(4) as usize;
    if payload != bytes.len() - V2_HEADER {
        return Err(format!(
            "its header says {payload} bytes of counts, it has {}",
            bytes.len() - V2_HEADER
        ));
    }
    if word(12) > MAX_DIGITS {
        return Err(format!(
            "{} significant digits (at most {MAX_DIGITS})",
            word(12)
        ));
    }
    let highest = u64::from_be_bytes(bytes[24..32].try_into().unwrap_or_default());
    if highest > MAX_HIGHEST {
        return Err(format!("highest value {highest} (at most {MAX_HIGHEST})"));
    }
    Ok(())
}

impl History {
    /// Take one sample of every backend's `readings`, `now` being the
    /// monotonic time and `at_ms` the wall clock of the sample.
    pub fn sample(&self, readings: Vec<Reading>, now: Instant, at_ms: u64) {
        let mut inner = self.inner.lock();
        let elapsed = inner
            .last_sample
            .map_or(INTERVAL, |last| now.saturating_duration_since(last));
        inner.last_sample = Some(now);
        inner
            .series
            .retain(|id, _| readings.iter().any(|(r, _, _)| r == id));
        for (id, requests, latency) in readings {
            let Some(series) = inner.series.get_mut(&id) else {
                // The first sample of a backend only sets the baseline.
                inner.series.insert(
                    id,
                    Series {
                        last_requests: requests,
                        last_latency: latency,
                        points: VecDeque::with_capacity(SAMPLES),
                    },
                );
                continue;
            };
            series.push(requests, latency, elapsed, at_ms);
        }
    }

    /// The series of every backend: `{"interval_ms", "backends": [{"id",
    /// "points": [[at_ms, requests_per_sec, p99_ms|null], ...]}]}`.
    pub fn to_json(&self) -> Value {
        let inner = self.inner.lock();
        let backends: Vec<Value> = inner
            .series
            .iter()
            .map(|(id, s)| {
                let points: Vec<Value> = s
                    .points
                    .iter()
                    .map(|p| json!([p.at_ms, round2(p.requests_per_sec), p.p99_ms.map(round2)]))
                    .collect();
                json!({ "id": &**id, "points": points })
            })
            .collect();
        json!({
            "interval_ms": INTERVAL.as_millis() as u64,
            "now_ms": unix_ms(),
            "backends": backends,
        })
    }

    /// The points of one backend, oldest first (for tests).
    #[cfg(test)]
    pub fn points(&self, id: &str) -> Vec<Point> {
        self.inner
            .lock()
            .series
            .get(id)
            .map(|s| s.points.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl Series {
    fn push(&mut self, requests: u64, latency: Histogram<u64>, elapsed: Duration, at_ms: u64) {
        // Counters that went backwards belong to a new backend of the same
        // id: everything it counted is new.
        let restarted = requests < self.last_requests;
        let delta = if restarted {
            requests
        } else {
            requests - self.last_requests
        };
        let mut window = latency.clone();
        if restarted || window.subtract(&self.last_latency).is_err() {
            window = latency.clone();
        }
        let secs = elapsed.as_secs_f64().max(0.001);
        let point = Point {
            at_ms,
            requests_per_sec: delta as f64 / secs,
            p99_ms: (!window.is_empty()).then(|| window.value_at_quantile(0.99) as f64 / 1000.0),
        };
        if self.points.len() == SAMPLES {
            self.points.pop_front();
        }
        self.points.push_back(point);
        self.last_requests = requests;
        self.last_latency = latency;
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Sample the LB every [`INTERVAL`] until `stop` turns true.
pub async fn run(history: Arc<History>, lb: Arc<LbAdmin>, stop: watch::Receiver<bool>) {
    let mut every = Every::new(INTERVAL, stop);
    while every.tick().await {
        let answer: Value = match lb.get("/admin/v1/latency").await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "no latency sample from the LB");
                continue;
            }
        };
        match readings(&answer) {
            Ok(r) => history.sample(r, Instant::now(), unix_ms()),
            Err(e) => tracing::warn!(error = %e, "the LB's latency answer is unreadable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_header_that_lies_is_refused_before_decoding() {
        use hdrhistogram::serialization::{Serializer as _, V2Serializer};
        let mut h = new_histogram();
        h.record(1_500).unwrap();
        let mut real = Vec::new();
        V2Serializer::new().serialize(&h, &mut real).unwrap();
        assert_eq!(check_header(&real), Ok(()), "the LB's own");
        // The attack: a bare header asking for 4 GiB of counts and the
        // widest histogram.
        let mut forged = real[..V2_HEADER].to_vec();
        forged[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(check_header(&forged).unwrap_err().contains("says"));
        let mut wide = real.clone();
        wide[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(check_header(&wide).unwrap_err().contains("highest"));
        let mut digits = real.clone();
        digits[12..16].copy_from_slice(&5u32.to_be_bytes());
        assert!(check_header(&digits).unwrap_err().contains("digits"));
        assert!(check_header(&real[..10]).is_err());
        let mut other = real.clone();
        other[0] = 0x1d;
        assert!(check_header(&other).unwrap_err().contains("cookie"));
    }

    /// The LB's totals per backend, as `GET /admin/v1/latency` reports
    /// them: a request count and a latency histogram (microseconds, the
    /// LB's bounds), each since the backend was added.
    struct Table(Vec<(String, u64, Histogram<u64>)>);

    fn table(ids: &[&str]) -> Table {
        Table(
            ids.iter()
                .map(|id| ((*id).to_string(), 0, new_histogram()))
                .collect(),
        )
    }

    fn new_histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 60_000_000, 2).unwrap()
    }

    impl Table {
        fn snapshot(&self) -> &Self {
            self
        }
        /// The readings of a sample.
        fn list(&self) -> Vec<Reading> {
            self.0
                .iter()
                .map(|(id, n, h)| (Arc::from(id.as_str()), *n, h.clone()))
                .collect()
        }
        fn remove(&mut self, id: &str) -> Option<()> {
            let before = self.0.len();
            self.0.retain(|(i, _, _)| i != id);
            (self.0.len() < before).then_some(())
        }
        fn add(&mut self, id: &str) -> Option<()> {
            self.0.push((id.to_string(), 0, new_histogram()));
            Some(())
        }
    }

    /// Count `n` requests of `latency` on backend `index`, as the proxy does.
    fn serve(t: &mut Table, index: usize, n: usize, latency: Duration) {
        let (_, requests, h) = &mut t.0[index];
        for _ in 0..n {
            *requests += 1;
            h.saturating_record(latency.as_micros() as u64);
        }
    }

    #[test]
    fn windows_are_differences_of_the_totals() {
        let h = History::default();
        let mut t = table(&["node-1"]);
        let t0 = Instant::now();
        serve(&mut t, 0, 50, Duration::from_millis(100));
        h.sample(t.snapshot().list(), t0, 1_000);
        assert!(
            h.points("node-1").is_empty(),
            "the first sample is the baseline"
        );

        // 20 fast requests in the next two seconds: the slow ones before
        // the baseline must not show in this window's p99.
        serve(&mut t, 0, 20, Duration::from_millis(2));
        h.sample(t.snapshot().list(), t0 + Duration::from_secs(2), 3_000);
        let p = h.points("node-1")[0];
        assert_eq!(p.at_ms, 3_000);
        assert!((p.requests_per_sec - 10.0).abs() < 1e-9, "{p:?}");
        let p99 = p.p99_ms.unwrap();
        assert!((1.9..2.1).contains(&p99), "{p99}");

        // A quiet second: zero requests and no p99 (a gap, not a zero).
        h.sample(t.snapshot().list(), t0 + Duration::from_secs(3), 4_000);
        let p = h.points("node-1")[1];
        assert_eq!((p.requests_per_sec, p.p99_ms), (0.0, None));
    }

    #[test]
    fn bounded_and_forgets_removed_backends() {
        let h = History::default();
        let mut t = table(&["node-1", "node-2"]);
        let t0 = Instant::now();
        for i in 0..(SAMPLES as u64 + 20) {
            serve(&mut t, 0, 1, Duration::from_millis(1));
            h.sample(t.snapshot().list(), t0 + Duration::from_secs(i), i * 1000);
        }
        assert_eq!(h.points("node-1").len(), SAMPLES);
        assert_eq!(h.points("node-2").len(), SAMPLES);
        t.remove("node-2").unwrap();
        h.sample(t.snapshot().list(), t0 + Duration::from_secs(400), 400_000);
        assert!(h.points("node-2").is_empty());
        let json = h.to_json();
        assert_eq!(json["backends"].as_array().unwrap().len(), 1);
        assert_eq!(json["backends"][0]["id"], "node-1");
    }

    #[test]
    fn a_backend_added_again_under_the_same_id_starts_from_zero() {
        let h = History::default();
        let t0 = Instant::now();
        let mut t = table(&["node-1"]);
        serve(&mut t, 0, 100, Duration::from_millis(5));
        h.sample(t.snapshot().list(), t0, 0);
        t.remove("node-1").unwrap();
        t.add("node-1").unwrap();
        serve(&mut t, 0, 3, Duration::from_millis(1));
        h.sample(t.snapshot().list(), t0 + Duration::from_secs(1), 1_000);
        let p = h.points("node-1")[0];
        assert_eq!(p.requests_per_sec, 3.0);
        assert!(p.p99_ms.unwrap() < 2.0);
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer as _, V2Serializer};

    #[test]
    fn readings_come_from_the_lbs_latency_answer() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
        h.record_n(2_000, 20).unwrap();
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&h, &mut bytes).unwrap();
        let answer = json!({ "encoding": "hdrhistogram-v2-base64", "backends": [
            { "id": "node-1", "requests": 20, "histogram": BASE64.encode(&bytes) } ] });
        let r = readings(&answer).unwrap();
        assert_eq!((&*r[0].0, r[0].1, r[0].2.len()), ("node-1", 20, 20));
        assert_eq!(r[0].2.value_at_quantile(0.99), h.value_at_quantile(0.99));
        let bad = json!({ "backends": [{ "id": "node-1", "requests": 1, "histogram": "!!" }] });
        assert!(readings(&bad).unwrap_err().contains("node-1"));
        assert!(readings(&json!({})).is_err());
    }
}
