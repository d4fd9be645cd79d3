//! The part every provider simulator shares: server lifecycle, request log,
//! fault injection and rate-limit windows.
//!
//! A simulator keeps an `Arc<`[`Shell`]`>` in the state its handlers share and
//! the [`ShellHandle`] that [`Shell::serve`] returns in its public handle,
//! which derefs to it: `base_url`, `addr`, `shutdown`, `faults`, `inject`,
//! `inject_nth`, `pending_faults`, `requests`, `clear_requests` and `count`
//! are written once, here. Its interceptor hands each request to
//! [`Shell::intercept`] (record → take the fault due → handle → finish) and
//! supplies only what is its own: which routes the request belongs to, how to
//! handle it, and how it renders a throttle.
//!
//! - [`faults`] — the fault kinds and the queue (by route and by count);
//! - [`log`] — request capture and the request log;
//! - [`server`] — bind/serve/stop, connections a handler can reset;
//! - [`rate`] — [`rate::RateWindow`], the one sliding window type.

pub mod faults;
pub mod log;
pub mod rate;
pub mod server;

#[cfg(test)]
pub mod testkit;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use faults::{garbage_response, status_response, Fault, FaultQueue, FaultRoute, Lost};
use log::{Logged, RecordedRequest, RequestLog};
use server::{Resetter, ServerHandle, Stop};

/// What a simulator's handlers share with the shell: the request log (of the
/// simulator's own request record type `Q`) and the fault queue (keyed by its
/// route enum `R`).
#[derive(Debug)]
pub struct Shell<R, Q> {
    log: RequestLog<Q>,
    faults: FaultQueue<R>,
    /// Ends hanging requests when the server stops.
    stop: Stop,
}

/// One incoming request as the interceptor hands it to [`Shell::intercept`].
#[derive(Debug)]
pub struct Call<Q> {
    /// What goes into the log.
    pub entry: Q,
    /// Resets the request's connection (for [`Lost::Reset`]).
    pub resetter: Option<Resetter>,
}

impl<Q> Call<Q> {
    /// `entry`, for a request that came on `request`'s connection.
    pub fn new(entry: Q, request: &Request) -> Call<Q> {
        Call {
            entry,
            resetter: Resetter::of(request),
        }
    }
}

impl<R: FaultRoute, Q: Logged> Shell<R, Q> {
    pub fn new() -> Arc<Self> {
        Arc::new(Shell {
            log: RequestLog::new(),
            faults: FaultQueue::new(),
            stop: Stop::default(),
        })
    }

    pub fn log(&self) -> &RequestLog<Q> {
        &self.log
    }

    pub fn faults(&self) -> &FaultQueue<R> {
        &self.faults
    }

    /// Serve `router` on `addr` (port 0 picks a free port) until the last
    /// clone of the returned handle is dropped or it is shut down.
    pub async fn serve(
        self: &Arc<Self>,
        addr: SocketAddr,
        router: Router,
    ) -> std::io::Result<ShellHandle<R, Q>> {
        let server = ServerHandle::spawn_with(addr, router, self.stop.clone()).await?;
        Ok(ShellHandle {
            shell: self.clone(),
            server: Arc::new(server),
        })
    }

    /// The one interceptor flow: log `call.entry`; take the fault due on the
    /// request (`applies` says which queued routes it belongs to; `None`: it
    /// is never faulted, e.g. a health probe); run `handle` as that fault
    /// says ([`Fault::Throttle`] answers `throttle()`); then `finish`
    /// completes the log entry from the answer. A request that is never
    /// answered (a hang, a reset) is not finished.
    pub async fn intercept<H, T, F>(
        &self,
        call: Call<Q>,
        applies: Option<&(dyn Fn(&R) -> bool + Sync)>,
        handle: H,
        throttle: T,
        finish: F,
    ) -> Response
    where
        H: Future<Output = Response> + Send + 'static,
        T: FnOnce() -> Response,
        F: FnOnce(&mut Q, &mut Response),
    {
        let slot = self.log.push(call.entry);
        let fault = applies.and_then(|applies| self.faults.take_where(applies));
        if let Some(fault) = &fault {
            tracing::debug!(?fault, "simulator firing fault");
        }
        let (mut response, answered) = self.answer(fault, call.resetter, handle, throttle).await;
        if answered {
            self.log.update(slot, |entry| finish(entry, &mut response));
        }
        response
    }

    /// Run `handle` as `fault` says; `false` when the client gets no answer.
    async fn answer<H, T>(
        &self,
        fault: Option<Fault>,
        resetter: Option<Resetter>,
        handle: H,
        throttle: T,
    ) -> (Response, bool)
    where
        H: Future<Output = Response> + Send + 'static,
        T: FnOnce() -> Response,
    {
        let response = match fault {
            None => handle.await,
            Some(Fault::Status(code, body)) => status_response(code, body),
            Some(Fault::Garbage) => garbage_response(),
            Some(Fault::Throttle) => throttle(),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                handle.await
            }
            Some(Fault::DelayAfter(delay)) => {
                let response = applied(handle).await;
                tokio::time::sleep(delay).await;
                response
            }
            Some(Fault::LoseAnswer(lost)) => {
                let _ = applied(handle).await;
                match lost {
                    Lost::Status(code, body) => status_response(code, body),
                    Lost::Garbage => garbage_response(),
                    Lost::Reset => return (reset(resetter), false),
                }
            }
            Some(Fault::Hang) => return (self.hang().await, false),
            Some(Fault::HangAfterApply) => {
                let _ = applied(handle).await;
                return (self.hang().await, false);
            }
        };
        (response, true)
    }

    /// Hold the request until the server stops.
    async fn hang(&self) -> Response {
        self.stop.stopped().await;
        (StatusCode::SERVICE_UNAVAILABLE, "simulator stopped").into_response()
    }
}

/// Paths under this prefix belong to a simulator itself, not to the provider
/// it plays: never recorded, never faulted.
pub const SIM_PREFIX: &str = "/_sim/";

/// `router` with `shared` as its state, every request except the simulator's
/// own (`/_sim/...`) captured and handed to `intercept` with the rest of the
/// stack (`next`) that handles it.
pub fn intercepted<S, F, Fut>(router: Router<Arc<S>>, shared: Arc<S>, intercept: F) -> Router
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, RecordedRequest, Request, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let state = shared.clone();
    let layer = middleware::from_fn(move |request: Request, next: Next| {
        let (shared, intercept) = (state.clone(), intercept.clone());
        async move {
            if request.uri().path().starts_with(SIM_PREFIX) {
                return next.run(request).await;
            }
            let (recorded, request) = log::capture(request).await;
            intercept(shared, recorded, request, next).await
        }
    });
    router.layer(layer).with_state(shared)
}

/// `body` as JSON with `status`, labelled with a provider's own `content_type`.
pub fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    content_type: &'static str,
) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body.to_string(),
    )
        .into_response()
}

/// Run `handle` on its own task, so it completes even if the client hangs up.
async fn applied<H>(handle: H) -> Response
where
    H: Future<Output = Response> + Send + 'static,
{
    match tokio::spawn(handle).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "simulator handler task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Reset the connection; the response returned is never written.
fn reset(resetter: Option<Resetter>) -> Response {
    match resetter {
        Some(resetter) => resetter.reset(),
        // Only a server not started by the shell lacks one.
        None => tracing::warn!("simulator cannot reset this connection; answering 500"),
    }
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// A running simulator's shell: its server and its shared [`Shell`]. Clones
/// share both; the server stops when the last clone is dropped or
/// [`ShellHandle::shutdown`] is called. Provider simulators deref to it.
pub struct ShellHandle<R, Q> {
    shell: Arc<Shell<R, Q>>,
    server: Arc<ServerHandle>,
}

impl<R, Q> Clone for ShellHandle<R, Q> {
    fn clone(&self) -> Self {
        ShellHandle {
            shell: self.shell.clone(),
            server: self.server.clone(),
        }
    }
}

impl<R, Q> fmt::Debug for ShellHandle<R, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellHandle")
            .field("base_url", &self.server.base_url())
            .finish_non_exhaustive()
    }
}

impl<R: FaultRoute, Q: Logged> ShellHandle<R, Q> {
    /// `http://127.0.0.1:PORT`: the simulator's local origin.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stop the server now (all clones); hanging requests end. Idempotent.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    pub fn shell(&self) -> &Shell<R, Q> {
        &self.shell
    }

    /// The fault queue.
    pub fn faults(&self) -> &FaultQueue<R> {
        &self.shell.faults
    }

    /// Queue `fault` for the next request on `route` (FIFO, fires once).
    /// `Fault::Throttle` answers the provider's own rate-limit response.
    pub fn inject(&self, route: R, fault: Fault) {
        self.shell.faults.push(route, fault);
    }

    /// Queue `fault` for the `nth` (1-based) request on `route` from now on.
    pub fn inject_nth(&self, route: R, nth: usize, fault: Fault) {
        self.shell.faults.push_nth(route, nth, fault);
    }

    /// Faults queued but not yet fired.
    pub fn pending_faults(&self) -> usize {
        self.shell.faults.pending()
    }

    /// Every request logged so far, oldest first (faulted ones included; the
    /// simulator's own `/_sim/` requests excluded).
    pub fn requests(&self) -> Vec<Q> {
        self.shell.log.all()
    }

    /// Requests with this method and exact path (query excluded).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.shell.log.count(method, path)
    }

    /// Forget the logged requests.
    pub fn clear_requests(&self) {
        self.shell.log.clear();
    }
}

/// Declares a provider simulator's public handle: the struct (the provider's
/// `Shared` state and its [`ShellHandle`]), `Clone`, `Debug`, `Deref` to the
/// shell, `start` (loopback, free port) and `config`. The provider writes
/// `start_on`, which builds its `Shared` and calls [`Shell::serve`].
macro_rules! simulator {
    (
        $(#[$doc:meta])*
        $name:ident {
            product: $product:literal,
            config: $config:ty,
            route: $route:ty,
            request: $request:ty $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            shared: std::sync::Arc<Shared>,
            shell: $crate::sim::shell::ShellHandle<$route, $request>,
        }

        impl std::ops::Deref for $name {
            type Target = $crate::sim::shell::ShellHandle<$route, $request>;

            fn deref(&self) -> &Self::Target {
                &self.shell
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("base_url", &self.base_url())
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            #[doc = concat!("Start the ", $product, " simulator on `127.0.0.1` with a free port.")]
            ///
            /// # Panics
            /// If no loopback port can be bound, or `start_on` refuses the config.
            pub async fn start(config: $config) -> $name {
                Self::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config)
                    .await
                    .expect(concat!("bind the ", $product, " simulator on 127.0.0.1:0"))
            }

            pub fn config(&self) -> &$config {
                &self.shared.config
            }
        }
    };
}

pub(crate) use simulator;
