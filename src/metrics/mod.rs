//! Runtime metrics: pure readers of `/proc` and cgroup text, the load-average arithmetic,
//! the latency histogram, the rendering of Heroku `log-runtime-metrics`-style lines, and
//! of the same sample as StatsD datagrams.
//!
//! Nothing here runs on its own: the master calls the sampler every `--metrics-interval`
//! seconds. Parsers take text (or bytes) and return plain data, so they are tested on
//! fixtures; the few functions that read files are thin and say so.

pub mod advice;
pub mod cgroup;
pub mod exporter;
pub mod load;
pub mod prometheus;
pub mod sample;
pub mod statsd;
pub mod tally;
pub mod tcp;
