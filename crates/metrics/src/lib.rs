//! kvnet-metrics: what kvnet counts, in Prometheus' text exposition format (0.0.4).
//! Pure: engines keep plain counters and [`Histogram`]s, the daemon reads them at
//! scrape time into [`Family`]s, and [`render`] writes the text.
//!
//! Written here rather than through a client crate: those keep live metric objects in
//! a registry, while kvnet's numbers live in its engines (behind the locks the engines
//! already have) and are read once per scrape; the format is a few line shapes, and the
//! tests check the output with `promtool check metrics`.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Upper bounds, in seconds, for latencies from a few microseconds (a DNS answer from
/// memory) to seconds (a network start, a slow fsync).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// A histogram with fixed bucket bounds: counts per bucket (not cumulative), sum, count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(LATENCY_BUCKETS)
    }
}

impl Histogram {
    /// Buckets with these upper bounds (ascending), plus +Inf.
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `(upper bound, observations at or below it)`, +Inf last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c;
                (b, acc)
            })
            .collect()
    }

    /// The smallest bound under which at least `q` (0..=1) of the observations fall;
    /// None when empty.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let want = (q * self.count as f64).ceil().max(1.0) as u64;
        self.cumulative()
            .into_iter()
            .find(|(_, c)| *c >= want)
            .map(|(b, _)| b)
    }
}

mod counters;
pub use counters::{DhcpCounters, DnsCounters};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Hist(Histogram),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// One metric: its name, help, kind and samples (one per label set).
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: impl Into<String>, kind: Kind, help: &'static str) -> Family {
        Family {
            name: name.into(),
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a counter or gauge sample.
    pub fn num(&mut self, labels: &[(&'static str, &str)], v: f64) -> &mut Family {
        self.samples.push(Sample {
            labels: own(labels),
            value: Value::Num(v),
        });
        self
    }

    /// Adds a histogram sample.
    pub fn hist(&mut self, labels: &[(&'static str, &str)], h: &Histogram) -> &mut Family {
        self.samples.push(Sample {
            labels: own(labels),
            value: Value::Hist(h.clone()),
        });
        self
    }
}

fn own(labels: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    labels.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// A label value as the format quotes it: `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn labels(out: &mut String, l: &[(&'static str, String)], extra: Option<(&str, String)>) {
    if l.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in l.iter().map(|(k, v)| (*k, v.clone())).chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape_label(&v));
    }
    out.push('}');
}

/// The families as Prometheus text: `# HELP`, `# TYPE`, then each sample; histograms
/// as `_bucket{le=…}` (cumulative), `_sum` and `_count`. Families without samples are
/// left out.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {help}", f.name);
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for s in &f.samples {
            match &s.value {
                Value::Num(v) => {
                    out.push_str(&f.name);
                    labels(&mut out, &s.labels, None);
                    let _ = writeln!(out, " {}", number(*v));
                }
                Value::Hist(h) => {
                    for (b, c) in h.cumulative() {
                        let _ = write!(out, "{}_bucket", f.name);
                        labels(&mut out, &s.labels, Some(("le", number(b))));
                        let _ = writeln!(out, " {c}");
                    }
                    let _ = write!(out, "{}_sum", f.name);
                    labels(&mut out, &s.labels, None);
                    let _ = writeln!(out, " {}", number(h.sum()));
                    let _ = write!(out, "{}_count", f.name);
                    labels(&mut out, &s.labels, None);
                    let _ = writeln!(out, " {}", h.count());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), [(0.1, 2), (1.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(h.count(), 4);
        assert!((h.sum() - 3.65).abs() < 1e-9);
        assert_eq!(h.quantile_bound(0.5), Some(0.1));
        assert_eq!(h.quantile_bound(0.99), Some(f64::INFINITY));
        assert_eq!(Histogram::new(&[1.0]).quantile_bound(0.5), None);
    }

    #[test]
    fn text_format() {
        let mut c = Family::new("kvnet_x_total", Kind::Counter, "Things.\nMore");
        c.num(&[("network", "a\"b\\c\nd")], 3.0);
        c.num(&[], 0.5);
        let mut h = Family::new("kvnet_lat_seconds", Kind::Histogram, "Latency.");
        let mut hist = Histogram::new(&[0.001]);
        hist.observe(0.0005);
        h.hist(&[("network", "n")], &hist);
        let empty = Family::new("kvnet_none", Kind::Gauge, "Nothing.");
        let text = render(&[c, h, empty]);
        assert_eq!(
            text,
            "# HELP kvnet_x_total Things.\\nMore\n\
             # TYPE kvnet_x_total counter\n\
             kvnet_x_total{network=\"a\\\"b\\\\c\\nd\"} 3\n\
             kvnet_x_total 0.5\n\
             # HELP kvnet_lat_seconds Latency.\n\
             # TYPE kvnet_lat_seconds histogram\n\
             kvnet_lat_seconds_bucket{network=\"n\",le=\"0.001\"} 1\n\
             kvnet_lat_seconds_bucket{network=\"n\",le=\"+Inf\"} 1\n\
             kvnet_lat_seconds_sum{network=\"n\"} 0.0005\n\
             kvnet_lat_seconds_count{network=\"n\"} 1\n"
        );
    }
}
