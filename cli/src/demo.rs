//! The demo app served by the `runicorn` binary (its routes are listed in the README): routes that exercise
//! every part of the process model (slow I/O, CPU, memory growth, panics, aborts), and
//! response bodies whose framing the server must get right (a body shorter than the length
//! the app declared, a file with no length).

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode, header};

use runicorn::{App, Body, BoxError, ConnectionInfo, Request, Response, WorkerInfo};
use runicorn_tools::rng::Rng;

/// The demo app.
///
/// Routes: `GET /` (`Hello world`), `/sleep?ms=N`, `/work?ms=N`,
/// `/service?dist=exp&mean_ms=M` (a sleep of a drawn length, see [`Service`]), `/alloc?mb=N`,
/// `/lookup?key=K`, `/panic`, `/abort`, `/short?declared=N&sent=M`, `/pipe`, `/peer` (the
/// connection's addresses, from runicorn's `ConnectionInfo`); anything else is 404. With `RUNICORN_DEMO_FAIL_BOOT=1` in the environment every worker fails in
/// `after_fork`, which shows the crash-loop handling. With `RUNICORN_DEMO_TABLE_MB=N` the
/// master builds an N MiB lookup table before it forks (what an app's preloaded data looks
/// like: shared by every worker, copy-on-write, as long as no worker writes to it).
#[derive(Debug, Default)]
pub struct Demo {
    retained: Vec<Vec<u8>>,
    table: Vec<u64>,
    fail_boot: bool,
    /// Draws the service times of `/service`; seeded again in each worker.
    rng: Rng,
}

impl Demo {
    /// The demo app, reading `RUNICORN_DEMO_FAIL_BOOT` and `RUNICORN_DEMO_TABLE_MB` from the
    /// environment.
    pub fn new() -> Demo {
        let table_mb = std::env::var("RUNICORN_DEMO_TABLE_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        Demo {
            retained: Vec::new(),
            table: lookup_table(table_mb),
            fail_boot: std::env::var("RUNICORN_DEMO_FAIL_BOOT").is_ok_and(|v| v == "1"),
            rng: Rng::default(),
        }
    }
}

/// `mb` MiB of 64-bit entries, every one written (so every page is resident): entry `i` is
/// a hash of `i`, as a table computed at boot would be.
fn lookup_table(mb: usize) -> Vec<u64> {
    let len = mb.min(1 << 16) * (1 << 20) / 8;
    (0..len as u64)
        .map(|i| (i ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9))
        .collect()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/plain".parse().expect("static value"),
    );
    r
}

/// The value of `key` in a query string, as a number.
fn query_number(query: Option<&str>, key: &str) -> Option<u64> {
    query_value(query, key)?.parse().ok()
}

/// The value of `key` in a query string, as a finite number that is not negative.
fn query_float(query: Option<&str>, key: &str) -> Option<f64> {
    query_value(query, key)?
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
}

fn query_value<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// The service-time distribution of a `/service` request, from its query string:
/// `dist=exp&mean_ms=M` (exponential, the default; M defaults to 20),
/// `dist=const&ms=M` (always M ms; `mean_ms` is read too), or
/// `dist=lognormal&median_ms=M&sigma=S` (M defaults to 20, S to 1). Every draw is capped at
/// `max_ms` (10000 by default), below the default `--timeout` of 30 s.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Service {
    Exp { mean_ms: f64 },
    Const { ms: f64 },
    LogNormal { median_ms: f64, sigma: f64 },
}

/// The longest service time drawn unless `max_ms` says otherwise.
const SERVICE_MAX_MS: f64 = 10_000.0;

impl Service {
    /// The distribution a query string asks for, and the cap; `Err` names what is wrong.
    fn from_query(query: Option<&str>) -> Result<(Service, f64), String> {
        let number = |key: &str, default: f64| match query_value(query, key) {
            None => Ok(default),
            Some(_) => {
                query_float(query, key).ok_or_else(|| format!("{key} must be a number, 0 or more"))
            }
        };
        let service = match query_value(query, "dist").unwrap_or("exp") {
            "exp" => Service::Exp {
                mean_ms: number("mean_ms", 20.0)?,
            },
            "const" => Service::Const {
                ms: number("ms", number("mean_ms", 20.0)?)?,
            },
            "lognormal" => Service::LogNormal {
                median_ms: number("median_ms", 20.0)?,
                sigma: number("sigma", 1.0)?,
            },
            other => return Err(format!("unknown dist {other:?}: exp, const or lognormal")),
        };
        Ok((service, number("max_ms", SERVICE_MAX_MS)?))
    }

    /// One service time in ms, drawn with `rng`.
    fn draw(self, rng: &mut Rng) -> f64 {
        match self {
            // Inversion: -mean ln(1 - u), u in [0, 1), so the logarithm's argument is > 0.
            Service::Exp { mean_ms } => -mean_ms * (1.0 - rng.next_f64()).ln(),
            Service::Const { ms } => ms,
            // median e^(sigma z), z standard normal (Box-Muller).
            Service::LogNormal { median_ms, sigma } => {
                let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                median_ms * (sigma * z).exp()
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::Exp { .. } => "exp",
            Service::Const { .. } => "const",
            Service::LogNormal { .. } => "lognormal",
        }
    }
}

impl App for Demo {
    fn after_fork(&mut self, worker: &WorkerInfo) -> Result<(), BoxError> {
        // Workers draw different service times: each starts its counter from its pid.
        self.rng = Rng::new(u64::from(worker.pid).wrapping_mul(0x2545_f491_4f6c_dd1d));
        if self.fail_boot {
            return Err("RUNICORN_DEMO_FAIL_BOOT=1: failing on purpose".into());
        }
        Ok(())
    }

    fn call(&mut self, req: Request<'_>) -> Response {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, "GET, HEAD".parse().expect("static value"));
            return r;
        }
        let query = req.uri().query();
        match req.uri().path() {
            "/" => text(StatusCode::OK, "Hello world\n"),
            "/sleep" => {
                let ms = query_number(query, "ms").unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                text(StatusCode::OK, format!("slept {ms} ms\n"))
            }
            "/service" => {
                let (status, body) = self.service(query);
                text(status, body)
            }
            "/work" => {
                let ms = query_number(query, "ms").unwrap_or(0);
                // N ms of CPU time, not of wall-clock time: on a busy machine a worker is
                // preempted, and a wall-clock loop would then do less work per request the
                // more workers share the CPUs (flattering any worker count above the CPUs).
                let until = cpu_time() + Duration::from_millis(ms);
                let mut x = 0u64;
                while cpu_time() < until {
                    for i in 0..1000u64 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(i),
                        );
                    }
                }
                text(StatusCode::OK, format!("worked {ms} ms ({})\n", x % 10))
            }
            "/alloc" => {
                let mb = query_number(query, "mb").unwrap_or(0) as usize;
                let mut block = vec![0u8; mb << 20];
                // Touch every page so the memory is really resident, not just reserved.
                for page in block.chunks_mut(4096) {
                    page[0] = 1;
                }
                self.retained.push(block);
                let total: usize = self.retained.iter().map(Vec::len).sum();
                text(
                    StatusCode::OK,
                    format!("allocated {mb} MiB, {} MiB in all\n", total >> 20),
                )
            }
            "/lookup" => {
                // Reads one entry: the table's pages stay shared with the master.
                let key = query_number(query, "key").unwrap_or(0) as usize;
                match self.table.len() {
                    0 => text(
                        StatusCode::NOT_FOUND,
                        "no table: set RUNICORN_DEMO_TABLE_MB\n",
                    ),
                    len => text(StatusCode::OK, format!("{:016x}\n", self.table[key % len])),
                }
            }
            "/short" => {
                // A streamed body of `sent` bytes under the app's own `Content-Length:
                // declared`: with fewer bytes than declared, the response is cut.
                let declared = query_number(query, "declared").unwrap_or(10);
                let sent = query_number(query, "sent").unwrap_or(5);
                let mut r = Response::new(Body::reader(std::io::repeat(b'x').take(sent)));
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
                r
            }
            "/pipe" => piped("piped body\n"),
            "/peer" => match req.extensions().get::<ConnectionInfo>() {
                Some(c) => {
                    let show =
                        |a: Option<std::net::SocketAddr>| a.map_or("-".into(), |a| a.to_string());
                    let line = format!(
                        "peer={} local={} listener={}\n",
                        show(c.peer),
                        show(c.local),
                        c.listener
                    );
                    text(StatusCode::OK, line)
                }
                None => text(StatusCode::INTERNAL_SERVER_ERROR, "no connection info\n"),
            },
            "/panic" => panic!("the /panic route panics on purpose"),
            "/abort" => std::process::abort(),
            _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }
}

impl Demo {
    /// `/service`: sleeps for a service time drawn from the distribution the query asks for.
    /// An I/O-bound service: the worker waits, as for a database, and uses no CPU, so the
    /// queueing in front of the workers does not depend on how many cores the machine has.
    fn service(&mut self, query: Option<&str>) -> (StatusCode, String) {
        match Service::from_query(query) {
            Ok((service, max_ms)) => {
                let ms = service.draw(&mut self.rng).min(max_ms);
                std::thread::sleep(Duration::from_secs_f64(ms / 1000.0));
                (
                    StatusCode::OK,
                    format!("served {ms:.3} ms ({})\n", service.name()),
                )
            }
            Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }
}

/// `text` as a [`Body::file`] over a pipe: a file whose length is not known up front.
fn piped(body: &str) -> Response {
    // The body is written before the app returns, so it must fit in the pipe's buffer
    // (64 KiB on Linux); the write end is closed, so the server reads it to its end.
    let file = nix::unistd::pipe()
        .map_err(std::io::Error::from)
        .and_then(|(read, write)| {
            File::from(write).write_all(body.as_bytes())?;
            Ok(File::from(read))
        });
    match file {
        Ok(file) => {
            let mut r = Response::new(Body::file(file));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("pipe: {e}\n")),
    }
}

/// The CPU time this thread has used (clock_gettime(2), CLOCK_THREAD_CPUTIME_ID).
fn cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn::RequestBody;

    fn get(app: &mut Demo, uri: &str) -> (u16, String) {
        let req = http::Request::builder()
            .uri(uri)
            .body(RequestBody::empty())
            .unwrap();
        let resp = app.call(req);
        let body = match resp.body().len_hint() {
            Some(_) => format!("{:?}", resp.body()),
            None => String::new(),
        };
        (resp.status().as_u16(), body)
    }

    #[test]
    fn routes() {
        let mut app = Demo::default();
        assert_eq!(get(&mut app, "/").0, 200);
        assert_eq!(get(&mut app, "/sleep?ms=1").0, 200);
        assert_eq!(get(&mut app, "/work?ms=1").0, 200);
        assert_eq!(get(&mut app, "/service?dist=exp&mean_ms=1").0, 200);
        assert_eq!(get(&mut app, "/service?dist=const&ms=0").0, 200);
        assert_eq!(
            get(&mut app, "/service?dist=lognormal&median_ms=1&sigma=0.5").0,
            200
        );
        assert_eq!(get(&mut app, "/service?dist=zipf").0, 400);
        assert_eq!(get(&mut app, "/service?mean_ms=-1").0, 400);
        assert_eq!(get(&mut app, "/nope").0, 404);
        assert_eq!(get(&mut app, "/short?declared=3&sent=2").0, 200);
        assert_eq!(get(&mut app, "/pipe").0, 200);
        assert_eq!(get(&mut app, "/alloc?mb=1").0, 200);
        assert_eq!(app.retained.iter().map(Vec::len).sum::<usize>(), 1 << 20);
        assert_eq!(get(&mut app, "/lookup?key=3").0, 404, "no table");
    }

    #[test]
    fn lookup_table() {
        let mut app = Demo {
            table: super::lookup_table(1),
            ..Demo::default()
        };
        assert_eq!(app.table.len() * 8, 1 << 20);
        assert_eq!(get(&mut app, "/lookup?key=3").0, 200);
        // Keys past the end wrap.
        let len = app.table.len();
        assert_eq!(
            get(&mut app, &format!("/lookup?key={}", len + 3)),
            get(&mut app, "/lookup?key=3")
        );
    }

    /// The mean of `n` draws.
    fn mean_of(service: Service, seed: u64, n: usize) -> f64 {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| service.draw(&mut rng)).sum::<f64>() / n as f64
    }

    #[test]
    fn service_times_have_the_asked_mean() {
        // Exponential: the standard error of the mean of 100 000 draws is 0.3 % of it.
        for seed in [1, 42, 4242] {
            let m = mean_of(Service::Exp { mean_ms: 20.0 }, seed, 100_000);
            assert!((m - 20.0).abs() < 0.02 * 20.0, "seed {seed}: mean {m}");
        }
        // Its draws are spread as an exponential's: about e^-1 of them above the mean.
        let mut rng = Rng::new(7);
        let above = (0..100_000)
            .filter(|_| Service::Exp { mean_ms: 5.0 }.draw(&mut rng) > 5.0)
            .count() as f64
            / 100_000.0;
        assert!((above - (-1f64).exp()).abs() < 0.01, "{above}");
        assert_eq!(mean_of(Service::Const { ms: 3.5 }, 1, 10), 3.5);
        // Log-normal: the median is median_ms, the mean median * e^(sigma^2 / 2).
        let ln = Service::LogNormal {
            median_ms: 10.0,
            sigma: 0.5,
        };
        let m = mean_of(ln, 3, 200_000);
        let want = 10.0 * (0.125f64).exp();
        assert!((m - want).abs() < 0.02 * want, "mean {m}, want {want}");
        let mut rng = Rng::new(9);
        let below = (0..100_000).filter(|_| ln.draw(&mut rng) < 10.0).count();
        assert!((49_000..51_000).contains(&below), "{below}");
    }

    #[test]
    fn service_draws_are_seeded() {
        let exp = Service::Exp { mean_ms: 20.0 };
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..5).map(|_| exp.draw(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draws(11), draws(11));
        assert_ne!(draws(11), draws(12));
        assert!(draws(11).iter().all(|&ms| ms >= 0.0));
    }

    #[test]
    fn service_queries() {
        let q = |s: &str| Service::from_query(Some(s));
        assert_eq!(
            q("dist=exp&mean_ms=5"),
            Ok((Service::Exp { mean_ms: 5.0 }, 10_000.0))
        );
        assert_eq!(
            Service::from_query(None),
            Ok((Service::Exp { mean_ms: 20.0 }, 10_000.0))
        );
        assert_eq!(
            q("dist=const&ms=2.5&max_ms=1"),
            Ok((Service::Const { ms: 2.5 }, 1.0))
        );
        assert_eq!(
            q("dist=const&mean_ms=4"),
            Ok((Service::Const { ms: 4.0 }, 10_000.0))
        );
        assert_eq!(
            q("dist=lognormal&median_ms=8&sigma=0.25"),
            Ok((
                Service::LogNormal {
                    median_ms: 8.0,
                    sigma: 0.25
                },
                10_000.0
            ))
        );
        assert!(q("dist=pareto").is_err());
        assert!(q("mean_ms=abc").is_err());
        assert!(q("mean_ms=inf").is_err());
        // A draw above the cap is cut to it.
        let mut app = Demo::default();
        let (status, body) = app.service(Some("dist=const&ms=5000&max_ms=1"));
        assert_eq!(status, 200);
        assert_eq!(body, "served 1.000 ms (const)\n");
    }

    #[test]
    fn query_numbers() {
        assert_eq!(query_number(Some("a=1&ms=250"), "ms"), Some(250));
        assert_eq!(query_number(Some("ms=x"), "ms"), None);
        assert_eq!(query_number(None, "ms"), None);
    }
}
