//! Serving a [tower] service, such as an [axum] `Router`, with runicorn (feature `tower`).
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! fn main() {
//!     // Built once, in the master, before the workers are forked.
//!     runicorn::tower::run(|| Router::new().route("/", get(|| async { "Hello world\n" })))
//! }
//! ```
//!
//! Any [`tower_service::Service`] of `http::Request<`[`IncomingBody`]`>` whose response is an
//! `http::Response` with an [`http_body::Body`] is served: an axum `Router` as it is (with
//! its state, extractors and tower-http layers), or a service written by hand.
//!
//! # What runs where
//!
//! - **The master** builds the service once, before it forks, as for any runicorn app: what
//!   it loads is shared copy-on-write by the workers. No runtime exists there, and the
//!   master must stay single-threaded (runicorn refuses to fork otherwise): build nothing
//!   that starts a thread or needs a running runtime (tower's `Buffer`, a connection pool)
//!   while making the service; do that in the per-worker hook.
//! - **Each worker** builds its own Tokio *current-thread* runtime right after the fork and
//!   keeps it for its life. It runs the async hook given to [`TowerApp::after_fork`] there
//!   (open database pools, warm caches), then serves requests on it.
//! - **One request at a time** (`--worker-connections 1`, the default): for each request the
//!   worker drives `poll_ready` and `call` to the response with `block_on`, as it calls any
//!   runicorn app, on the runtime itself (no local task set is entered, which costs a few
//!   µs a request). Tasks the service spawns (`tokio::spawn`) run on the runtime only while
//!   the worker is inside a request; `spawn_local` needs `--worker-connections` above 1.
//! - **Several at once** (`--worker-connections N`, N above 1): each request's `call` runs
//!   as a task of the worker's runtime (a local task: the service's futures need not be
//!   `Send`), and while requests are in flight the worker waits *in* the runtime, which runs
//!   them until a new connection or request arrives or one of them has its response. A
//!   handler waiting on I/O (a database, another service, a timer) then leaves the worker
//!   free for the others. `--timeout` applies to each request inside the worker: a request
//!   whose response is not ready in time has its future dropped, and its client gets `503
//!   Service Unavailable` (logged as `request timeout`, with the request). A handler that
//!   blocks its thread (a blocking call, a busy loop) stops every request of its worker:
//!   past `--timeout` the master kills that worker (logged as `worker timeout`, naming the
//!   oldest request and how many were in flight) and starts another. Responses are written
//!   by the worker one at a time, each as soon as its head is ready; a client that reads
//!   its response slowly holds the others meanwhile (each write waits at most
//!   `--header-timeout` for it).
//! - Every supervision feature (graceful stop, HUP, USR2, max-requests, max-worker-memory,
//!   metrics) is unchanged. A graceful stop answers every request in flight before the
//!   worker exits.
//!
//! # Bodies
//!
//! The worker has collected the whole request body before the service is called (in memory,
//! or in a temporary file for a large one): [`IncomingBody`] hands it to the service in frames
//! of up to 64 KiB, with an exact size hint, and never waits for the client. The request's
//! extensions are kept, among them runicorn's [`RequestId`] and
//! [`RawHead`](crate::RawHead).
//!
//! A short response body of known length (64 KiB at most: a `String`, `Json`, `Full`) is
//! read whole on the runtime before anything is written, and goes out with its head in one
//! write. Any other response body is written frame by frame as the service produces them:
//! with `Content-Length` when the body's size hint is exact (or the service set the header),
//! otherwise chunked to HTTP/1.1 clients and ended by closing the connection for HTTP/1.0
//! ones. Trailers (a trailers frame) follow the last chunk when the client sent `TE:
//! trailers`, and are dropped otherwise (and for a response that is not chunked), as
//! RFC 9110 section 6.5 asks. An error from the body in the middle of a response is logged
//! (`response body failed`, with the request) and cuts the response: the connection is
//! closed, so the client sees an incomplete response. While the worker waits for the next
//! frame of a streamed body, the other requests in flight move on.
//!
//! # Errors and panics
//!
//! An error from the service (`poll_ready` or `call`) answers `500 Internal Server Error` and
//! is logged as `service failed` with the request. A panic while the service runs, in a
//! handler or in a response body, is caught like a panic in any runicorn app (500, or a cut
//! response once the head is sent; the worker and its other requests go on) and the runtime
//! stays usable for the next request.
//!
//! # Calling a service directly
//!
//! A [`TowerApp`] is an [`App`]: it can be called without a server, as in this test (the
//! runtime is then made on the first call).
//!
//! ```
//! use axum::{Json, Router, routing::post};
//! use runicorn::{App, RequestBody, tower::TowerApp};
//!
//! let router = Router::new().route("/sum", post(|Json(v): Json<Vec<u64>>| async move {
//!     Json(v.iter().sum::<u64>())
//! }));
//! let mut app = TowerApp::new(router);
//! let req = http::Request::get("/nowhere").body(RequestBody::empty()).unwrap();
//! assert_eq!(app.call(req).status(), 404);
//! ```

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderValue, Method, StatusCode, Uri, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::unix::AsyncFd;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::LocalSet;
use tower_service::Service;
use tracing::error;

use crate::handler::{
    App, Body, BodySource, BoxError, Concurrent, Request, RequestBody, Response, WorkerInfo, plain,
};
use crate::worker::{RequestId, take_panic};

/// The largest request body frame handed to the service.
const FRAME: usize = 64 * 1024;

/// Serves a tower service: reads the settings, builds the service with `make` (once, in the
/// master, before the workers are forked), serves until stopped, and exits, as
/// [`runicorn::run`](crate::run) does for any app.
///
/// For a per-worker hook, give [`runicorn::run`](crate::run) a [`TowerApp`] instead.
pub fn run<S, B>(make: impl FnOnce() -> S) -> !
where
    S: Service<http::Request<IncomingBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: 'static,
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
{
    crate::run(move || TowerApp::new(make()))
}

/// The hook run in each worker after fork, on the worker's runtime.
type Hook = Box<dyn FnOnce(WorkerInfo, &Exec) -> Result<(), BoxError>>;

/// A tower service as a runicorn [`App`]: each worker drives it on a Tokio current-thread
/// runtime of its own.
///
/// ```no_run
/// use std::sync::{Arc, OnceLock};
/// use axum::{Router, extract::State, routing::get};
/// use runicorn::tower::TowerApp;
///
/// /// Per-worker resources, set by the hook in each worker (after fork, each worker has its
/// /// own copy of everything built in the master).
/// #[derive(Default)]
/// struct AppState {
///     db: OnceLock<String>, // a database pool in a real app
/// }
///
/// fn main() {
///     runicorn::run(|| {
///         let state = Arc::new(AppState::default());
///         let router = Router::new()
///             .route("/", get(|State(s): State<Arc<AppState>>| async move {
///                 format!("served with {}\n", s.db.get().unwrap())
///             }))
///             .with_state(state.clone());
///         TowerApp::new(router).after_fork(move |worker| async move {
///             // Runs in each worker, on its runtime, before it accepts a connection.
///             let _ = state.db.set(format!("pool of worker {}", worker.slot));
///             Ok(())
///         })
///     })
/// }
/// ```
pub struct TowerApp<S> {
    service: S,
    hook: Option<Hook>,
    runtime: Option<Rc<Exec>>,
    worker: Option<WorkerInfo>,
    /// Responses of requests started concurrently (`--worker-connections` above 1), and
    /// the worker's poll as the runtime watches it; made on the first such request.
    concurrent: Option<Shared>,
}

impl<S> TowerApp<S> {
    /// The app serving `service`. Nothing starts here: the runtime is made in each worker.
    pub fn new(service: S) -> TowerApp<S> {
        TowerApp {
            service,
            hook: None,
            runtime: None,
            worker: None,
            concurrent: None,
        }
    }

    /// Sets an async hook that each worker runs once after fork, on its own runtime, before
    /// it accepts any connection: the place to open database pools and other per-process
    /// resources. An error (or a panic) fails the worker's boot, as an error from
    /// [`App::after_fork`] does: the worker exits and the master logs it, and treats repeated
    /// failures as a crash loop. The master's `--timeout` bounds how long it may take.
    pub fn after_fork<F, Fut>(mut self, hook: F) -> TowerApp<S>
    where
        F: FnOnce(WorkerInfo) -> Fut + 'static,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        self.hook = Some(Box::new(move |worker, exec: &Exec| {
            exec.block_on(hook(worker))
        }));
        self
    }

    /// This worker's runtime, made on first use when `after_fork` did not run (an app called
    /// directly, in a test).
    fn runtime(&mut self) -> io::Result<Rc<Exec>> {
        match &self.runtime {
            Some(rt) => Ok(rt.clone()),
            None => {
                let rt = Rc::new(Exec::new()?);
                self.runtime = Some(rt.clone());
                Ok(rt)
            }
        }
    }
}

impl<S> std::fmt::Debug for TowerApp<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TowerApp")
            .field("service", &std::any::type_name::<S>())
            .field("hook", &self.hook.is_some())
            .field("runtime", &self.runtime.is_some())
            .field("worker", &self.worker)
            .finish()
    }
}

/// A worker's runtime: a Tokio current-thread runtime (timer and I/O drivers; it starts no
/// thread), and the local task set where requests served concurrently run (a service's
/// futures need not be `Send`). Everything the worker runs on it goes through `block_on`, so
/// those tasks move on whenever the worker waits for the runtime.
pub(crate) struct Exec {
    rt: Runtime,
    local: LocalSet,
    /// A task was spawned into `local`: from then on, everything runs inside it.
    local_used: std::cell::Cell<bool>,
}

impl Exec {
    fn new() -> io::Result<Exec> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Exec {
            rt,
            local: LocalSet::new(),
            local_used: std::cell::Cell::new(false),
        })
    }

    /// Runs `f` to its end on the runtime; with requests started concurrently, their tasks
    /// move on meanwhile. Entering the local set costs about 3 µs a call (a keep-alive
    /// request of an axum hello app: 16.5 against 19.8 µs of worker CPU), so a worker that
    /// never spawned into it (one request at a time) does not.
    ///
    /// Most calls of an app's handler are ready at once (no I/O to wait for): such a future
    /// is polled first inside the runtime's context only, and reaches the scheduler only
    /// if it must wait. A keep-alive request of an axum hello app: 19,400 against 18,400
    /// user-space instructions.
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        if self.local_used.get() {
            return self.local.block_on(&self.rt, f);
        }
        let mut f = pin!(f);
        {
            // Handlers may create timers and spawn tasks: they find the runtime's handle.
            let _context = self.rt.enter();
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
        // Polled again by the scheduler, with a waker that works.
        self.rt.block_on(f)
    }

    /// Runs `task` in the local set: a request served concurrently.
    fn spawn_local(&self, task: impl Future<Output = ()> + 'static) {
        self.local_used.set(true);
        self.local.spawn_local(task);
    }
}

impl<S, B> App for TowerApp<S>
where
    S: Service<http::Request<IncomingBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: 'static,
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
{
    fn after_fork(&mut self, worker: &WorkerInfo) -> Result<(), BoxError> {
        let exec = Exec::new()?;
        self.worker = Some(*worker);
        if let Some(hook) = self.hook.take() {
            hook(*worker, &exec)?;
        }
        self.runtime = Some(Rc::new(exec));
        Ok(())
    }

    fn call(&mut self, req: Request<'_>) -> Response {
        let (parts, body) = req.into_parts();
        let about = About::new(&parts, self.worker);
        let rt = match self.runtime() {
            Ok(rt) => rt,
            Err(e) => {
                about.error(&e, "cannot make the worker's runtime");
                return plain(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        let req = http::Request::from_parts(parts, IncomingBody::new(body));
        let service = &mut self.service;
        // Pinned here and handed down by reference: the call's future (an axum router's is
        // several hundred bytes) is not copied through each layer of `block_on`.
        let answer = pin!(async move {
            poll_fn(|cx| service.poll_ready(cx)).await?;
            Ok::<_, S::Error>(settle(service.call(req).await?).await)
        });
        let answer = rt.block_on(answer);
        match answer {
            Ok(settled) => settled.into_response(rt, about),
            Err(e) => {
                about.error(&*e.into(), "service failed");
                plain(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn concurrent(&mut self) -> Option<&mut dyn Concurrent> {
        Some(self)
    }
}

/// What the requests served concurrently share with the app: their finished responses, a
/// notification for each, and the worker's poll registered with the runtime.
struct Shared {
    done: Rc<RefCell<Vec<(usize, Response)>>>,
    notify: Rc<Notify>,
    /// A duplicate of the worker's poll descriptor, registered with the runtime.
    poll: Option<AsyncFd<OwnedFd>>,
}

impl<S, B> Concurrent for TowerApp<S>
where
    S: Service<http::Request<IncomingBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: 'static,
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
{
    /// Calls the service (once it is ready) and runs the call's future as a task of the
    /// worker's local set; the task's end puts the response in `done`.
    fn start(&mut self, key: usize, req: Request<'_>, timeout: Option<Duration>) {
        let (parts, body) = req.into_parts();
        let about = About::new(&parts, self.worker);
        let shared = self.concurrent.get_or_insert_with(|| Shared {
            done: Rc::default(),
            notify: Rc::default(),
            poll: None,
        });
        let (done, notify) = (shared.done.clone(), shared.notify.clone());
        let exec = match self.runtime() {
            Ok(exec) => exec,
            Err(e) => {
                about.error(&e, "cannot make the worker's runtime");
                return done
                    .borrow_mut()
                    .push((key, plain(StatusCode::INTERNAL_SERVER_ERROR)));
            }
        };
        let req = http::Request::from_parts(parts, IncomingBody::new(body));
        let service = &mut self.service;
        // A service that is not ready (a concurrency limit, say) holds the worker here while
        // the requests already started move on.
        if let Err(e) = exec.block_on(poll_fn(|cx| service.poll_ready(cx))) {
            about.error(&*e.into(), "service failed");
            return done
                .borrow_mut()
                .push((key, plain(StatusCode::INTERNAL_SERVER_ERROR)));
        }
        let call = service.call(req);
        let task_exec = exec.clone();
        exec.spawn_local(async move {
            let answer = CatchUnwind(Box::pin(async move {
                let call = async move {
                    match call.await {
                        Ok(response) => Ok(settle(response).await),
                        Err(e) => Err(e),
                    }
                };
                match timeout {
                    Some(t) => tokio::time::timeout(t, call).await.ok(),
                    None => Some(call.await),
                }
            }))
            .await;
            let response = match answer {
                Ok(Some(Ok(settled))) => settled.into_response(task_exec, about),
                Ok(Some(Err(e))) => {
                    about.error(&*e.into(), "service failed");
                    plain(StatusCode::INTERNAL_SERVER_ERROR)
                }
                Ok(None) => {
                    about.timed_out(timeout.unwrap_or_default());
                    plain(StatusCode::SERVICE_UNAVAILABLE)
                }
                Err(()) => {
                    about.panicked();
                    plain(StatusCode::INTERNAL_SERVER_ERROR)
                }
            };
            done.borrow_mut().push((key, response));
            notify.notify_one();
        });
    }

    /// Runs the started requests on the runtime until one of them is answered, the worker's
    /// poll is readable, or `timeout` passes (zero: one round of the tasks that can run).
    fn wait(
        &mut self,
        poll_fd: BorrowedFd<'_>,
        timeout: Option<Duration>,
        done: &mut Vec<(usize, Response)>,
    ) {
        let (Some(shared), Some(exec)) = (self.concurrent.as_mut(), self.runtime.as_ref()) else {
            return;
        };
        if timeout == Some(Duration::ZERO) {
            exec.block_on(tokio::task::yield_now());
        } else {
            exec.block_on(async {
                if shared.poll.is_none() {
                    // Registered once, edge-triggered: the worker empties its poll before
                    // each wait, so an edge comes with the next event.
                    match crate::sys::watch_readable(poll_fd) {
                        Ok(watched) => shared.poll = Some(watched),
                        Err(e) => {
                            error!(error = %e, "cannot watch the worker's poll from its runtime")
                        }
                    }
                }
                let mut notified = pin!(shared.notify.notified());
                let mut sleep = pin!(tokio::time::sleep(timeout.unwrap_or(Duration::MAX)));
                let poll = shared.poll.as_ref();
                let mut readable = pin!(async {
                    match poll {
                        Some(p) => {
                            if let Ok(mut guard) = p.readable().await {
                                guard.clear_ready();
                            }
                        }
                        None => std::future::pending().await,
                    }
                });
                poll_fn(|cx| {
                    if notified.as_mut().poll(cx).is_ready()
                        || readable.as_mut().poll(cx).is_ready()
                        || sleep.as_mut().poll(cx).is_ready()
                    {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            });
        }
        done.append(&mut shared.done.borrow_mut());
    }

    /// The list of finished responses grew to the burst's widest; the runtime's own tables
    /// are tokio's to keep.
    fn shrink(&mut self) {
        if let Some(shared) = &self.concurrent {
            shared.done.borrow_mut().shrink_to_fit();
        }
    }
}

/// A future that turns a panic while polling it into `Err(())`: a handler's panic answers
/// its own request with 500 and leaves the other requests and the worker alone.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// The response to give runicorn's writer: the service's head, and a body read frame by
/// frame on the worker's runtime.
fn into_response<B>(response: http::Response<B>, rt: Rc<Exec>, about: About) -> Response
where
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    if !parts.headers.contains_key(header::CONTENT_LENGTH)
        && let Some(n) = body.size_hint().exact()
    {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let trailers = Rc::new(RefCell::new(None));
    let frames = Frames {
        body: Box::pin(body),
        rt,
        data: None,
        done: false,
        about,
        trailers: trailers.clone(),
    };
    let body = Body::reader_with_trailers(frames, move || trailers.take().unwrap_or_default());
    Response::from_parts(parts, body)
}

/// The largest response body read whole, before its head is written (see [`settle`]).
const WHOLE_BODY: u64 = 64 * 1024;

/// A service's response, its body read already when that was cheap (see [`settle`]).
enum Settled<B> {
    /// A short body of known length, read whole: written with its head in one write.
    Whole(http::response::Parts, Bytes),
    /// Any other body: streamed frame by frame as the writer asks for it.
    Streamed(http::Response<B>),
    /// A short body failed before its end: nothing was written yet.
    Failed(BoxError),
}

/// Reads a response body whole when its size is known and at most [`WHOLE_BODY`] (a
/// `String`, `Json`, `Full`: most responses), on the runtime, in the task that made it. The
/// writer then sends head and body in one writev(2), where streaming would cost a write per
/// part and a turn of the runtime per frame. A body whose head declares another
/// `Content-Length` than its size (a response to HEAD, say) is left to stream.
async fn settle<B>(response: http::Response<B>) -> Settled<B>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let Some(n) = response
        .body()
        .size_hint()
        .exact()
        .filter(|&n| n <= WHOLE_BODY)
    else {
        return Settled::Streamed(response);
    };
    // axum sets `Content-Length` from the size hint; a different one (a response to HEAD,
    // whose body is empty) is the service's to keep.
    let declared = response.headers().get(header::CONTENT_LENGTH);
    if declared.is_some_and(|v| v.as_bytes() != n.to_string().as_bytes()) {
        return Settled::Streamed(response);
    }
    let (parts, body) = response.into_parts();
    let mut body = pin!(body);
    // Most such bodies are one frame (a `String`, `Json`, `Full`): kept as it comes, shared
    // and not copied; the frames of a body of several are joined.
    let mut bytes = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        match frame {
            Ok(frame) => {
                if let Ok(mut data) = frame.into_data() {
                    let data = data.copy_to_bytes(data.remaining());
                    if data.is_empty() {
                        continue;
                    }
                    match &mut joined {
                        Some(all) => all.extend_from_slice(&data),
                        None if bytes.is_empty() => bytes = data,
                        None => {
                            let mut all = Vec::with_capacity(n as usize);
                            all.extend_from_slice(&bytes);
                            all.extend_from_slice(&data);
                            joined = Some(all);
                        }
                    }
                }
            }
            Err(e) => return Settled::Failed(e.into()),
        }
    }
    if let Some(all) = joined {
        bytes = Bytes::from(all);
    }
    Settled::Whole(parts, bytes)
}

impl<B> Settled<B>
where
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
{
    fn into_response(self, rt: Rc<Exec>, about: About) -> Response {
        match self {
            Settled::Whole(parts, bytes) => Response::from_parts(parts, Body::from(bytes)),
            Settled::Streamed(response) => into_response(response, rt, about),
            Settled::Failed(e) => {
                about.error(&*e, "response body failed");
                plain(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// What the logs say about the request a failure belongs to.
struct About {
    worker: Option<usize>,
    method: Method,
    uri: Uri,
    request_id: Option<String>,
}

impl About {
    fn new(parts: &http::request::Parts, worker: Option<WorkerInfo>) -> About {
        About {
            worker: worker.map(|w| w.slot),
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        }
    }

    fn timed_out(&self, timeout: Duration) {
        error!(
            worker = self.worker,
            pid = std::process::id(),
            method = %self.method,
            path = self.uri.path(),
            request_id = self.request_id.as_deref(),
            timeout_s = timeout.as_secs_f64(),
            "request timeout: its work was dropped"
        );
    }

    fn panicked(&self) {
        error!(
            worker = self.worker,
            pid = std::process::id(),
            method = %self.method,
            path = self.uri.path(),
            request_id = self.request_id.as_deref(),
            panic = take_panic(),
            "app panicked"
        );
    }

    fn error(&self, e: &(dyn std::error::Error + '_), msg: &'static str) {
        error!(
            worker = self.worker,
            pid = std::process::id(),
            method = %self.method,
            path = self.uri.path(),
            request_id = self.request_id.as_deref(),
            error = %e,
            "{msg}"
        );
    }
}

/// A response body as a reader: each read takes the next data frame, waiting for it on the
/// worker's runtime, so that the writer sends the frames as they come.
struct Frames<B: HttpBody> {
    body: Pin<Box<B>>,
    rt: Rc<Exec>,
    /// The rest of the frame being written.
    data: Option<B::Data>,
    done: bool,
    about: About,
    /// The body's trailers frame, for the writer to send after the last chunk.
    trailers: Rc<RefCell<Option<http::HeaderMap>>>,
}

impl<B> Read for Frames<B>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if buf.is_empty() {
                return Ok(0);
            }
            if let Some(data) = &mut self.data {
                let n = data.remaining().min(buf.len());
                if n > 0 {
                    data.copy_to_slice(&mut buf[..n]);
                    return Ok(n);
                }
                self.data = None;
            }
            if self.done {
                return Ok(0);
            }
            let body = &mut self.body;
            match self.rt.block_on(poll_fn(|cx| body.as_mut().poll_frame(cx))) {
                None => self.done = true,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.data = Some(data),
                    Err(frame) => {
                        if let Ok(fields) = frame.into_trailers() {
                            self.trailers
                                .borrow_mut()
                                .get_or_insert_default()
                                .extend(fields);
                        }
                    }
                },
                Some(Err(e)) => {
                    self.done = true;
                    let e: BoxError = e.into();
                    self.about.error(&*e, "response body failed");
                    return Err(io::Error::other(e));
                }
            }
        }
    }
}

/// A request body for a tower service: the body runicorn has already collected, in memory or
/// in a temporary file, handed out in data frames of up to 64 KiB with an exact size hint.
///
/// Reading it never waits for the client. An error (`io::Error`) means a large body's
/// temporary file could not be read.
pub struct IncomingBody {
    src: Option<Box<dyn BodySource + Send + Sync>>,
}

impl IncomingBody {
    /// A body with no bytes (to build requests by hand, in tests).
    pub fn empty() -> IncomingBody {
        IncomingBody { src: None }
    }

    fn new(body: RequestBody<'_>) -> IncomingBody {
        IncomingBody {
            src: body.into_owned(),
        }
    }

    fn remaining(&self) -> u64 {
        self.src
            .as_ref()
            .map_or(0, |s| s.remaining().unwrap_or(u64::MAX))
    }
}

impl Default for IncomingBody {
    fn default() -> IncomingBody {
        IncomingBody::empty()
    }
}

impl std::fmt::Debug for IncomingBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingBody")
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl HttpBody for IncomingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let want = self.remaining().min(FRAME as u64) as usize;
        let Some(src) = self.src.as_mut() else {
            return Poll::Ready(None);
        };
        if want == 0 {
            self.src = None;
            return Poll::Ready(None);
        }
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match src.read_body(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.src = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        if got == 0 {
            self.src = None;
            return Poll::Ready(None);
        }
        buf.truncate(got);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        match self.src.as_ref().map(|s| s.remaining()) {
            None => SizeHint::with_exact(0),
            Some(Some(n)) => SizeHint::with_exact(n),
            Some(None) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    use http_body_util::combinators::UnsyncBoxBody;
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;
    use crate::handler::BodyKind;

    /// A collected request body, as the worker hands it over.
    struct Collected(io::Cursor<Vec<u8>>);

    impl BodySource for Collected {
        fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
        fn remaining(&self) -> Option<u64> {
            Some(self.0.get_ref().len() as u64 - self.0.position())
        }
        fn take(&mut self) -> Box<dyn BodySource + Send + Sync> {
            Box::new(Collected(std::mem::take(&mut self.0)))
        }
    }

    type TestBody = UnsyncBoxBody<Bytes, BoxError>;

    fn full(text: impl Into<Bytes>) -> TestBody {
        Full::new(text.into())
            .map_err(|e| match e {})
            .boxed_unsync()
    }

    /// Data frames (or errors) one after another, each after a timer tick: a body of no
    /// known length that needs the runtime's timer.
    fn frames(items: Vec<Result<Frame<Bytes>, BoxError>>) -> TestBody {
        let stream = futures_util::stream::unfold(items.into_iter(), |mut it| async move {
            let next = it.next()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some((next, it))
        });
        StreamBody::new(stream).boxed_unsync()
    }

    /// A service written by hand, one route per behaviour under test.
    struct Routes;

    impl Service<http::Request<IncomingBody>> for Routes {
        type Response = http::Response<TestBody>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>>>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<IncomingBody>) -> Self::Future {
            Box::pin(async move {
                let body = match req.uri().path() {
                    "/hello" => full("hello"),
                    "/spawned" => {
                        // Not ready at its first poll: the spawned task runs on the
                        // scheduler, which then wakes this handler.
                        let n = tokio::spawn(async { 6 * 7 }).await?;
                        full(n.to_string())
                    }
                    "/large" => full(vec![b'x'; 70 * 1024]),
                    "/head-like" => {
                        let mut r = http::Response::new(full(""));
                        r.headers_mut()
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(3));
                        return Ok(r);
                    }
                    "/fail" => return Err("the database is down".into()),
                    "/panic" => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        panic!("this handler panics on purpose (the message above is expected)")
                    }
                    "/stream" => frames(vec![
                        Ok(Frame::data(Bytes::from("one "))),
                        Ok(Frame::data(Bytes::from("two "))),
                        Ok(Frame::data(Bytes::from("three"))),
                    ]),
                    "/trailers" => {
                        let mut fields = http::HeaderMap::new();
                        fields.insert("x-checksum", HeaderValue::from_static("abc"));
                        frames(vec![
                            Ok(Frame::data(Bytes::from("data"))),
                            Ok(Frame::trailers(fields)),
                        ])
                    }
                    "/broken" => frames(vec![
                        Ok(Frame::data(Bytes::from("partial"))),
                        Err("the upstream went away".into()),
                    ]),
                    "/upload" => {
                        let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
                        let hint = req.body().size_hint().exact();
                        let mut body = req.into_body();
                        let mut sizes = Vec::new();
                        while let Some(frame) = body.frame().await {
                            sizes.push(frame?.into_data().unwrap().len().to_string());
                        }
                        full(format!("{id:?} {hint:?} {}", sizes.join(",")))
                    }
                    _ => full("not found"),
                };
                Ok(http::Response::new(body))
            })
        }
    }

    fn get(app: &mut TowerApp<Routes>, path: &str) -> Response {
        let req = http::Request::get(path).body(RequestBody::empty()).unwrap();
        app.call(req)
    }

    /// Reads a response body the way the writer does, read after read.
    fn read_body(response: Response) -> (Vec<u8>, Option<io::Error>) {
        let (body, err, _) = read_body_and_trailers(response);
        (body, err)
    }

    /// The same, and then the trailer fields, as the writer asks for them at the end.
    fn read_body_and_trailers(
        response: Response,
    ) -> (Vec<u8>, Option<io::Error>, Option<http::HeaderMap>) {
        let mut out = Vec::new();
        let (mut r, trailers) = match response.into_body().kind {
            BodyKind::Reader(r, trailers) => (r, trailers),
            BodyKind::Bytes(b) => return (b.to_vec(), None, None),
            BodyKind::File(_) => panic!("a tower response body is never a file"),
        };
        let mut buf = [0u8; 3];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (out, None, trailers.map(|t| t())),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e), None),
            }
        }
    }

    #[test]
    fn a_short_body_of_exact_size_is_read_whole_and_sent_with_its_head() {
        let mut app = TowerApp::new(Routes);
        let r = get(&mut app, "/hello");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.body().len_hint(),
            Some(5),
            "bytes: one write with the head"
        );
        assert_eq!(read_body(r).0, b"hello");
        // Past 64 KiB it streams, with its length.
        let r = get(&mut app, "/large");
        assert_eq!(r.body().len_hint(), None, "a reader");
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "71680");
        assert_eq!(read_body(r).0.len(), 71680);
        // A head that declares another length than the body's (HEAD) keeps its own.
        let r = get(&mut app, "/head-like");
        assert_eq!(r.body().len_hint(), None, "a reader");
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "3");
    }

    #[test]
    fn an_axum_handlers_text_is_read_whole() {
        use axum::routing::get;
        let router = axum::Router::new().route("/", get(|| async { "Hello world\n" }));
        let mut app = TowerApp::new(router);
        let req = http::Request::get("/").body(RequestBody::empty()).unwrap();
        let r = app.call(req);
        assert_eq!(r.body().len_hint(), Some(12), "{:?}", r.headers());
    }

    #[test]
    fn a_streamed_body_has_no_length_and_comes_whole_then_its_trailers() {
        let mut app = TowerApp::new(Routes);
        let r = get(&mut app, "/stream");
        assert!(r.headers().get(header::CONTENT_LENGTH).is_none());
        let (body, err, trailers) = read_body_and_trailers(r);
        assert_eq!(body, b"one two three");
        assert!(err.is_none());
        assert_eq!(trailers.unwrap().len(), 0, "no trailers frame: none");
        let (body, err, trailers) = read_body_and_trailers(get(&mut app, "/trailers"));
        assert_eq!(body, b"data");
        assert!(err.is_none());
        assert_eq!(trailers.unwrap()["x-checksum"], "abc");
    }

    #[test]
    fn an_error_in_the_middle_of_a_body_fails_the_read() {
        let mut app = TowerApp::new(Routes);
        let r = get(&mut app, "/broken");
        assert_eq!(r.status(), 200, "the head was the service's");
        let (body, err) = read_body(r);
        assert_eq!(body, b"partial");
        let err = err.expect("the body's error reaches the writer");
        assert!(err.to_string().contains("upstream went away"), "{err}");
    }

    #[test]
    fn a_handler_that_waits_for_a_task_it_spawned_is_answered() {
        let mut app = TowerApp::new(Routes);
        for _ in 0..3 {
            let response = get(&mut app, "/spawned");
            assert_eq!(response.status(), 200);
            assert_eq!(read_body(response).0, b"42");
        }
    }

    #[test]
    fn a_service_error_is_a_500() {
        let mut app = TowerApp::new(Routes);
        let r = get(&mut app, "/fail");
        assert_eq!(r.status(), 500);
        assert_eq!(r.body().len_hint(), Some(22));
    }

    #[test]
    fn a_panic_in_a_handler_leaves_the_runtime_usable() {
        let mut app = TowerApp::new(Routes);
        App::after_fork(&mut app, &WorkerInfo { slot: 0, pid: 1 }).unwrap();
        for _ in 0..3 {
            let panicked = catch_unwind(AssertUnwindSafe(|| get(&mut app, "/panic")));
            assert!(panicked.is_err());
            // The timer and the scheduler still work: a body that sleeps between frames.
            let (body, err) = read_body(get(&mut app, "/stream"));
            assert_eq!(body, b"one two three");
            assert!(err.is_none());
        }
    }

    #[test]
    fn the_request_body_comes_in_frames_with_its_extensions() {
        let mut app = TowerApp::new(Routes);
        let mut src = Collected(io::Cursor::new(vec![7u8; 150 * 1024]));
        let mut req = http::Request::post("/upload")
            .body(RequestBody::new(&mut src))
            .unwrap();
        req.extensions_mut().insert(RequestId("abc-1".into()));
        let (body, _) = read_body(app.call(req));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "Some(\"abc-1\") Some(153600) 65536,65536,22528"
        );
        let empty = IncomingBody::empty();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }

    #[test]
    fn the_hook_runs_once_on_the_workers_runtime_and_its_error_fails_the_boot() {
        let seen = Rc::new(std::cell::Cell::new(None));
        let set = seen.clone();
        let mut app = TowerApp::new(Routes).after_fork(move |w| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            set.set(Some(w.slot));
            Ok(())
        });
        App::after_fork(&mut app, &WorkerInfo { slot: 3, pid: 1 }).unwrap();
        assert_eq!(seen.get(), Some(3));
        assert_eq!(get(&mut app, "/hello").status(), 200);

        let mut failing = TowerApp::new(Routes).after_fork(|_| async { Err("no database".into()) });
        let e = App::after_fork(&mut failing, &WorkerInfo { slot: 0, pid: 1 }).unwrap_err();
        assert_eq!(e.to_string(), "no database");
    }

    #[test]
    fn an_infallible_service_of_any_body_is_an_app() {
        fn is_app<A: App>(_: &A) {}
        let svc = tower_service_fn(|_req: http::Request<IncomingBody>| async {
            Ok::<_, Infallible>(http::Response::new(String::from("ok")))
        });
        let app = TowerApp::new(svc);
        is_app(&app);
    }

    /// A closure as a service (what `tower::service_fn` does).
    fn tower_service_fn<F>(f: F) -> ServiceFn<F> {
        ServiceFn(f)
    }

    struct ServiceFn<F>(F);

    impl<F, Fut, R, E> Service<R> for ServiceFn<F>
    where
        F: FnMut(R) -> Fut,
        Fut: Future<Output = Result<http::Response<String>, E>>,
    {
        type Response = http::Response<String>;
        type Error = E;
        type Future = Fut;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: R) -> Fut {
            (self.0)(req)
        }
    }
}
