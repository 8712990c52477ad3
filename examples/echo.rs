//! The JSON echo app of the conformance kit (`tests/conformance/ECHO.md`): answers
//! every request with a JSON object describing the request exactly as the server received
//! it (method, target, path, query, version, header field lines, body in base64). The JSON
//! is made in `examples/common/echo_json.rs`, shared with `examples/tower_echo.rs`.
//!
//! Run it with `cargo run --release --example echo -- --bind 127.0.0.1:8080`, then point
//! the kit at it: `python3 run.py --host 127.0.0.1 --port 8080`.

use std::io::Read;

use http::{StatusCode, header};
use runicorn::{Body, Request, Response};

#[path = "common/echo_json.rs"]
mod echo_json;

fn main() {
    runicorn::run(|| echo)
}

/// The app: one JSON object per request, or 400 if the body cannot be read.
fn echo(mut req: Request<'_>) -> Response {
    let mut body = Vec::new();
    if req.body_mut().read_to_end(&mut body).is_err() {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    }
    let mut resp = Response::new(echo_json::describe(&req, &body).into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_a_request_built_by_hand() {
        let req = http::Request::post("/p?q")
            .body(runicorn::RequestBody::empty())
            .unwrap();
        let resp = echo(req);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }
}
