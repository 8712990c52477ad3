//! The conformance kit's echo app (`tests/conformance/ECHO.md`) as a tower service, served
//! through `runicorn::tower`: the same JSON as `examples/echo.rs` (both use
//! `examples/common/echo_json.rs`), so that the kit checks the tower path too.
//!
//! Run it with `cargo run --release --example tower_echo --features tower -- --bind
//! 127.0.0.1:8080`, then point the kit at it: `python3 run.py --host 127.0.0.1 --port 8080`.
//!
//! It is a service written by hand, with no framework: any `tower_service::Service` of
//! `http::Request<IncomingBody>` whose response body is an `http_body::Body` can be served.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, Full};
use runicorn::tower::IncomingBody;
use tower_service::Service;

#[path = "common/echo_json.rs"]
mod echo_json;

fn main() {
    runicorn::tower::run(|| Echo)
}

/// The echo service: one JSON object per request, or 400 if the body cannot be read.
#[derive(Debug, Clone, Copy)]
struct Echo;

impl Service<http::Request<IncomingBody>> for Echo {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<IncomingBody>) -> Self::Future {
        Box::pin(async move {
            let (head, body) = req.into_parts();
            let head = http::Request::from_parts(head, ());
            let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
                let mut resp = http::Response::new(Full::default());
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                return Ok(resp);
            };
            let json = echo_json::describe(&head, &body);
            let mut resp = http::Response::new(Full::new(Bytes::from(json)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        })
    }
}
