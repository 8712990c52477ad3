//! An axum app served by runicorn: shared state, JSON in and out, path parameters, a
//! streamed response, a 404 fallback, tower-http layers (request body limit, timeout,
//! trace) and an async hook that each worker runs after fork.
//!
//! ```sh
//! cargo run --release --example axum --features tower      # http://127.0.0.1:8080
//! curl -d '{"text": "buy milk"}' -H 'content-type: application/json' localhost:8080/notes
//! curl localhost:8080/notes/1
//! curl -N localhost:8080/stream?chunks=5
//! ```
//!
//! It takes runicorn's usual settings: `--bind`, `PORT`, `WEB_CONCURRENCY`, `--help`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | a greeting |
//! | `POST /notes` | `{"text": ...}` in, `201` and the stored note out, as JSON |
//! | `GET /notes/{id}` | the note as JSON, or a JSON 404 |
//! | `GET /stats` | this worker's slot, pid, requests served and notes stored |
//! | `GET /stream?chunks=N` | N lines, one every 10 ms, sent as they come (chunked) |
//! | `GET /export?rows=N` | N CSV rows, streamed, then a `x-rows` trailer field with the count (sent to clients that ask with `TE: trailers`) |
//! | `GET /slow?ms=N` | waits N ms on the worker's runtime; past 5 s the timeout layer answers 503 |
//! | `GET /debug/panic`, `/debug/abort`, `/debug/broken-stream` | a handler that panics, aborts the process, or whose body fails halfway: what runicorn does then |
//! | `GET /debug/block?ms=N` | a handler that blocks its thread for N ms (a blocking call in async code): the other requests of its worker wait, and past `--timeout` the master kills the worker |
//! | anything else | a JSON 404 |
//!
//! A request body over 64 KiB is refused with 413 by the body limit layer.
//!
//! State lives in each worker process: the `Arc<AppState>` is built once in the master and
//! every worker gets its own copy at fork, so a note stored by one worker is not seen by the
//! others. Shared data belongs in a database, whose pool the per-worker hook opens.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use http_body::Frame;
use http_body_util::StreamBody;
use runicorn::WorkerInfo;
use runicorn::tower::TowerApp;
use serde::{Deserialize, Serialize};
use tokio::time::sleep;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

fn main() {
    runicorn::run(|| {
        // In the master, once, before the workers are forked: no thread, no runtime here.
        let state = Arc::new(AppState::default());
        let hook_state = state.clone();
        TowerApp::new(app(state)).after_fork(move |worker| async move {
            // In each worker, on its own runtime, before it accepts a connection.
            let db = Pool::connect(worker).await?;
            tracing::info!(worker = worker.slot, pid = worker.pid, "database pool open");
            let _ = hook_state.db.set(db);
            Ok(())
        })
    })
}

/// The router, with its layers.
fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { "Hello from axum on runicorn\n" }))
        .route("/notes", axum::routing::post(create_note))
        .route("/notes/{id}", get(get_note))
        .route("/stats", get(stats))
        .route("/stream", get(stream))
        .route("/export", get(export))
        .route("/slow", get(slow))
        .route("/debug/panic", get(panics))
        .route("/debug/abort", get(aborts))
        .route("/debug/broken-stream", get(broken_stream))
        .route("/debug/block", get(blocks))
        .fallback(not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(5),
        ))
        .layer(TraceLayer::new_for_http())
}

/// What the handlers share (per worker process: see the module docs).
#[derive(Default)]
struct AppState {
    notes: Mutex<HashMap<u64, Note>>,
    next_id: AtomicU64,
    served: AtomicU64,
    /// Opened by the per-worker hook.
    db: OnceLock<Pool>,
}

impl AppState {
    fn db(&self) -> &Pool {
        self.db.get().expect("the after_fork hook opened the pool")
    }
}

/// Stands for a database pool (sqlx, deadpool, bb8...): something each worker must open
/// for itself, after fork, on its own runtime.
struct Pool {
    worker: WorkerInfo,
    opened: Instant,
}

impl Pool {
    async fn connect(worker: WorkerInfo) -> Result<Pool, runicorn::BoxError> {
        sleep(Duration::from_millis(5)).await; // the connection handshake
        Ok(Pool {
            worker,
            opened: Instant::now(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
struct Note {
    id: u64,
    text: String,
    /// The worker that stored it.
    worker: usize,
}

#[derive(Debug, Deserialize)]
struct NewNote {
    text: String,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

async fn create_note(
    State(state): State<Arc<AppState>>,
    Json(new): Json<NewNote>,
) -> (StatusCode, Json<Note>) {
    state.served.fetch_add(1, Ordering::Relaxed);
    let note = Note {
        id: state.next_id.fetch_add(1, Ordering::Relaxed) + 1,
        text: new.text,
        worker: state.db().worker.slot,
    };
    let mut notes = state
        .notes
        .lock()
        .expect("no handler panics holding the lock");
    notes.insert(note.id, note.clone());
    (StatusCode::CREATED, Json(note))
}

async fn get_note(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> Result<Json<Note>, (StatusCode, Json<ErrorBody>)> {
    state.served.fetch_add(1, Ordering::Relaxed);
    let notes = state
        .notes
        .lock()
        .expect("no handler panics holding the lock");
    match notes.get(&id) {
        Some(note) => Ok(Json(note.clone())),
        None => Err((
            StatusCode::NOT_FOUND,
            Json(ErrorBody {
                error: format!("no note {id}"),
            }),
        )),
    }
}

#[derive(Debug, Serialize)]
struct Stats {
    worker: usize,
    pid: u32,
    served: u64,
    notes: usize,
    pool_age_ms: u128,
}

async fn stats(State(state): State<Arc<AppState>>) -> Json<Stats> {
    let served = state.served.fetch_add(1, Ordering::Relaxed) + 1;
    let db = state.db();
    Json(Stats {
        worker: db.worker.slot,
        pid: db.worker.pid,
        served,
        notes: state.notes.lock().map_or(0, |n| n.len()),
        pool_age_ms: db.opened.elapsed().as_millis(),
    })
}

#[derive(Debug, Deserialize)]
struct Chunks {
    chunks: Option<u32>,
}

/// `chunks` lines, 10 ms apart: each is written to the client as it is produced.
async fn stream(Query(q): Query<Chunks>) -> Body {
    let n = q.chunks.unwrap_or(3).min(1000);
    let lines = futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        sleep(Duration::from_millis(10)).await;
        Some((Ok::<_, Infallible>(format!("chunk {i}\n")), i + 1))
    });
    Body::from_stream(lines)
}

#[derive(Debug, Deserialize)]
struct Rows {
    rows: Option<u32>,
}

/// CSV rows as they are produced, and their count as a trailer field once they are all out.
async fn export(Query(q): Query<Rows>) -> Response<Body> {
    let n = q.rows.unwrap_or(3).min(10_000);
    let rows = futures_util::stream::unfold(0, move |i| async move {
        match i.cmp(&n) {
            std::cmp::Ordering::Less => {
                let row = Frame::data(Bytes::from(format!("{i},note {i}\n")));
                Some((Ok::<_, Infallible>(row), i + 1))
            }
            std::cmp::Ordering::Equal => {
                let mut fields = HeaderMap::new();
                fields.insert("x-rows", HeaderValue::from(n));
                Some((Ok(Frame::trailers(fields)), i + 1))
            }
            std::cmp::Ordering::Greater => None,
        }
    });
    Response::builder()
        .header("content-type", "text/csv")
        .header("trailer", "x-rows")
        .body(Body::new(StreamBody::new(rows)))
        .unwrap()
}

#[derive(Debug, Deserialize)]
struct Wait {
    ms: Option<u64>,
}

async fn slow(Query(q): Query<Wait>) -> String {
    let ms = q.ms.unwrap_or(0);
    sleep(Duration::from_millis(ms)).await;
    format!("waited {ms} ms\n")
}

async fn blocks(Query(q): Query<Wait>) -> String {
    let ms = q.ms.unwrap_or(0);
    std::thread::sleep(Duration::from_millis(ms));
    format!("blocked {ms} ms\n")
}

async fn panics() -> &'static str {
    panic!("this handler panics on purpose")
}

async fn aborts() -> &'static str {
    std::process::abort()
}

/// A body that fails after its first chunk: the response is cut and the connection closed.
async fn broken_stream() -> Body {
    let parts = futures_util::stream::iter([
        Ok(Bytes::from("first chunk\n")),
        Err(std::io::Error::other("the upstream went away")),
    ]);
    Body::from_stream(parts)
}

async fn not_found() -> (StatusCode, Json<ErrorBody>) {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            error: "no such route".into(),
        }),
    )
}
