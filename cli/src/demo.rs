//! The demo app served by the `runicorn` binary (its routes are listed in the README): routes that exercise
//! every part of the process model (slow I/O, CPU, memory growth, panics, aborts), and
//! response bodies whose framing the server must get right (a body shorter than the length
//! the app declared, a file with no length).

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode, header};

use runicorn::{App, Body, BoxError, ConnectionInfo, Request, Response, WorkerInfo};

/// The demo app.
///
/// Routes: `GET /` (`Hello world`), `/sleep?ms=N`, `/work?ms=N`, `/alloc?mb=N`,
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
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if k == key { v.parse().ok() } else { None }
    })
}

impl App for Demo {
    fn after_fork(&mut self, _worker: &WorkerInfo) -> Result<(), BoxError> {
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

    #[test]
    fn query_numbers() {
        assert_eq!(query_number(Some("a=1&ms=250"), "ms"), Some(250));
        assert_eq!(query_number(Some("ms=x"), "ms"), None);
        assert_eq!(query_number(None, "ms"), None);
    }
}
