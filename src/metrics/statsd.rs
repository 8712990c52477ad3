//! StatsD output (`--statsd-host`): every metrics interval the master pushes the sample the
//! metric lines come from, as StatsD gauges (`|g`) and counters (`|c`), several to a
//! datagram (`docs/metrics.md`, "StatsD").
//!
//! [`render`] is pure: a sample in, datagrams out. [`Statsd`] is the socket, made once at
//! start, non-blocking: a datagram that cannot be sent is dropped and counted, never waited
//! for. Workers send nothing: they count into the scoreboard, and the master reads it.

use std::fmt::Display;
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use super::sample::{Sample, WorkerEnd, mean_us, quantiles};
use crate::config::StatsdAddr;

/// The largest datagram sent: what fits an Ethernet MTU (1500) less the IPv6 and UDP
/// headers and room for tunnels, the size StatsD clients commonly keep to.
pub const MAX_DATAGRAM: usize = 1432;

/// The root of every name, after the prefix, as `gunicorn.` is Gunicorn's.
pub const ROOT: &str = "runicorn.";

/// What every line carries besides its name, value and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// `--statsd-prefix`: empty, or ending in a dot.
    prefix: String,
    /// `--dogstatsd-tags` as sent: empty, or `|#k:v,...`.
    tags: String,
}

impl Format {
    /// From the settings' values (a prefix already ending in a dot, or empty).
    pub fn new(prefix: &str, tags: &[String]) -> Format {
        Format {
            prefix: prefix.to_string(),
            tags: if tags.is_empty() {
                String::new()
            } else {
                format!("|#{}", tags.join(","))
            },
        }
    }
}

/// StatsD lines, one metric each.
struct Lines<'a> {
    format: &'a Format,
    out: Vec<String>,
}

impl Lines<'_> {
    fn push(&mut self, name: &str, value: impl Display, kind: &str) {
        let f = self.format;
        self.out
            .push(format!("{}{ROOT}{name}:{value}|{kind}{}", f.prefix, f.tags));
    }

    fn gauge(&mut self, name: &str, value: impl Display) {
        self.push(name, value, "g");
    }

    fn count(&mut self, name: &str, n: u64) {
        self.push(name, n, "c");
    }

    /// `<name>_p50`, `_p95`, `_p99`, `_max` and `_mean` in ms, as the request line's.
    fn quantiles(&mut self, name: &str, h: &crate::histogram::Histogram, max_us: u64, sum_us: u64) {
        if let Some(q) = quantiles(h, max_us) {
            for (suffix, us) in ["p50", "p95", "p99", "max"].iter().zip(q) {
                self.gauge(&format!("{name}_{suffix}"), Ms(us));
            }
            self.gauge(&format!("{name}_mean"), Ms(mean_us(sum_us, h.count())));
        }
    }

    fn process_memory(&mut self, scope: &str, m: &crate::procfs::ProcMemory) {
        self.gauge(&format!("{scope}memory_rss"), m.rss_kib * 1024);
        self.gauge(&format!("{scope}memory_pss"), m.pss_kib * 1024);
        self.gauge(&format!("{scope}memory_uss"), m.uss_kib * 1024);
        self.gauge(&format!("{scope}memory_swap"), m.swap_kib * 1024);
    }

    fn tasks(&mut self, scope: &str, t: Option<&crate::procfs::ProcTasks>) {
        let Some(t) = t else { return };
        if let Some(kib) = t.page_tables_kib {
            self.gauge(&format!("{scope}memory_pte"), kib * 1024);
        }
        if let Some(n) = t.threads {
            self.gauge(&format!("{scope}threads"), n);
        }
    }
}

/// Microseconds shown as milliseconds with three decimals, as in the request line.
struct Ms(u64);

impl Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}", self.0 as f64 / 1000.0)
    }
}

/// The StatsD lines of one sample, in the order of the metric lines. Names are the metric
/// lines' keys under `runicorn.`; memory is in bytes, times in ms.
pub fn lines(sample: &Sample, format: &Format) -> Vec<String> {
    let mut l = Lines {
        format,
        out: Vec::with_capacity(64 + 12 * sample.workers.len()),
    };
    for (name, v) in ["load_avg_1m", "load_avg_5m", "load_avg_15m"]
        .iter()
        .zip(sample.load)
    {
        l.gauge(name, format_args!("{v:.2}"));
    }

    let m = &sample.dyno.figures;
    l.gauge("memory_total", m.rss_bytes + m.cache_bytes + m.swap_bytes);
    l.gauge("memory_rss", m.rss_bytes);
    l.gauge("memory_cache", m.cache_bytes);
    l.gauge("memory_swap", m.swap_bytes);
    if let Some(p) = m.pgpgin_pages {
        l.gauge("memory_pgpgin", p);
    }
    if let Some(p) = m.pgpgout_pages {
        l.gauge("memory_pgpgout", p);
    }
    if let Some(q) = m.quota_bytes {
        l.gauge("memory_quota", q);
    }

    if let Some(master) = &sample.master {
        l.process_memory("master.", &master.memory);
        l.tasks("master.", master.tasks.as_ref());
    }
    l.gauge("workers", sample.worker_count);

    for w in &sample.workers {
        let scope = format!("worker.{}.", w.slot);
        if let Some(m) = &w.memory {
            l.process_memory(&scope, m);
        }
        l.tasks(&scope, w.tasks.as_ref());
        l.gauge(&format!("{scope}requests"), w.requests);
        l.gauge(&format!("{scope}age"), w.age.as_secs());
    }

    let r = &sample.requests;
    let c = &r.counters;
    l.count("requests", c.requests());
    for (class, n) in c.status.iter().enumerate() {
        l.count(&format!("requests_{}xx", class + 1), *n);
    }
    l.quantiles("service", &c.service, c.service_max_us, c.service_sum_us);
    l.count("queued_requests", c.queue.count());
    l.quantiles("queue", &c.queue, c.queue_max_us, c.queue_sum_us);
    if let Some(b) = r.backlog {
        l.gauge("backlog", b.depth);
        l.gauge("backlog_limit", b.limit);
    }
    l.gauge("workers_busy", r.busy);
    l.gauge("workers_idle", r.idle);
    l.gauge("requests_in_flight", r.in_flight);

    l.count("worker_exits", sample.ends.exits());
    l.count("worker_timeouts", sample.ends.of(WorkerEnd::Timeout));
    l.count("worker_failures", sample.ends.of(WorkerEnd::Failed));
    l.out
}

/// Packs lines into datagrams of at most `max` bytes, separated by newlines, in order. A line
/// longer than `max` on its own goes alone (the settings' limits keep every line far below
/// [`MAX_DATAGRAM`]).
pub fn pack(lines: impl IntoIterator<Item = String>, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in lines {
        if !cur.is_empty() && cur.len() + 1 + line.len() > max {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(&line);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The datagrams of one sample.
pub fn render(sample: &Sample, format: &Format) -> Vec<String> {
    pack(lines(sample, format), MAX_DATAGRAM)
}

/// Where the datagrams go.
#[derive(Debug)]
enum Socket {
    /// Connected at start, so that `send` needs no address and a refusal (ICMP port
    /// unreachable) shows as `ECONNREFUSED` on a later send.
    Udp(UdpSocket),
    /// Unconnected, sent to the path each time: the agent may start after the server, or
    /// replace its socket file when it restarts.
    Unix(UnixDatagram, PathBuf),
}

/// The master's StatsD client: one non-blocking socket, made at start.
#[derive(Debug)]
pub struct Statsd {
    socket: Socket,
    format: Format,
}

impl Statsd {
    /// Resolves the host (once: a DNS change needs a restart or USR2) and makes the
    /// socket. `None`, logged, when that fails: the server then serves without StatsD.
    pub fn start(addr: &StatsdAddr, prefix: &str, tags: &[String]) -> Option<Statsd> {
        let socket = match Self::open(addr) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(addr = %addr, error = %e, "statsd: cannot reach the address; not pushing metrics");
                return None;
            }
        };
        let to = match &socket {
            Socket::Udp(s) => s.peer_addr().map_or(addr.to_string(), |a| a.to_string()),
            Socket::Unix(..) => addr.to_string(),
        };
        tracing::info!(addr = %addr, to = to.as_str(), "statsd: pushing metrics");
        Some(Statsd {
            socket,
            format: Format::new(prefix, tags),
        })
    }

    fn open(addr: &StatsdAddr) -> std::io::Result<Socket> {
        match addr {
            StatsdAddr::Udp { host, port } => {
                let to = (host.as_str(), *port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other("the host has no address"))?;
                let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let s = UdpSocket::bind(local)?;
                s.connect(to)?;
                s.set_nonblocking(true)?;
                Ok(Socket::Udp(s))
            }
            StatsdAddr::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.set_nonblocking(true)?;
                Ok(Socket::Unix(s, path.clone()))
            }
        }
    }

    /// Sends one sample's datagrams. Failures (nobody listening, a full buffer) are counted
    /// and logged once, at debug; nothing is retried.
    pub fn push(&mut self, sample: &Sample) {
        let datagrams = render(sample, &self.format);
        let mut failed = 0;
        let mut first_error = None;
        for d in &datagrams {
            let sent = match &self.socket {
                Socket::Udp(s) => s.send(d.as_bytes()),
                Socket::Unix(s, path) => s.send_to(d.as_bytes(), path),
            };
            if let Err(e) = sent {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            tracing::debug!(
                failed,
                datagrams = datagrams.len(),
                error = %e,
                "statsd: datagrams not sent"
            );
        }
    }
}

#[cfg(test)]
mod tests;
