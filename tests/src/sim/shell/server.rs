//! Provider-agnostic server lifecycle: bind, serve in the background, stop on
//! request or when the last handle is dropped; connections a handler can
//! reset (shared with the fault proxy).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running axum server. Dropping it (or calling [`ServerHandle::shutdown`])
/// stops accepting connections and lets in-flight requests finish; requests
/// held by a hang fault end too (see [`Stop`]).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Stop,
}

/// The stop signal of one server, cloned into whatever must end with it.
#[derive(Debug, Clone)]
pub struct Stop(Arc<watch::Sender<bool>>);

impl Default for Stop {
    fn default() -> Self {
        Stop(Arc::new(watch::Sender::new(false)))
    }
}

impl Stop {
    /// Signal the stop. Idempotent.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the stop was signalled.
    pub async fn stopped(&self) {
        let mut stopped = self.0.subscribe();
        let _ = stopped.wait_for(|stop| *stop).await;
    }
}

impl ServerHandle {
    /// Bind `addr` (port 0 picks a free port) and serve `router` on the
    /// current tokio runtime.
    pub async fn spawn(addr: SocketAddr, router: Router) -> std::io::Result<ServerHandle> {
        Self::spawn_with(addr, router, Stop::default()).await
    }

    /// As [`ServerHandle::spawn`], stopping when `stop` is signalled (or
    /// the handle is dropped). Every request carries a
    /// `ConnectInfo<`[`Resetter`]`>` that can reset its connection.
    pub async fn spawn_with(
        addr: SocketAddr,
        router: Router,
        stop: Stop,
    ) -> std::io::Result<ServerHandle> {
        let listener = ResettableListener::bind(addr).await?;
        let addr = Listener::local_addr(&listener)?;
        let signal = stop.clone();
        tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<Resetter>();
            let served = axum::serve(listener, app)
                // Either an explicit stop or the handle being dropped.
                .with_graceful_shutdown(async move { signal.stopped().await })
                .await;
            if let Err(error) = served {
                tracing::warn!(%addr, %error, "simulator server stopped with an error");
            }
        });
        Ok(ServerHandle { addr, stop })
    }

    /// The bound address (with the real port when 0 was requested).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop the server. Idempotent.
    pub fn shutdown(&self) {
        self.stop.stop();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An early answer (usually an error response) from a handler helper; boxed
/// so `Result`s stay small. Handlers return `Result<Response, Reject>` and
/// use `?` on helpers that return `Result<T, Reject>`.
#[derive(Debug)]
pub struct Reject(Box<Response>);

impl From<Response> for Reject {
    fn from(response: Response) -> Self {
        Reject(Box::new(response))
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        *self.0
    }
}

// -- Connections that a handler can reset ------------------------------------------------------

/// A TCP listener whose connections can be reset from a handler through [`Resetter`].
pub struct ResettableListener(TcpListener);

impl ResettableListener {
    pub async fn bind(addr: SocketAddr) -> io::Result<ResettableListener> {
        Ok(ResettableListener(TcpListener::bind(addr).await?))
    }
}

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        let stream = ResettableStream {
            inner: stream,
            reset: Arc::default(),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

/// One accepted connection of a [`ResettableListener`].
pub struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    /// After a reset every read and write fails; the server then drops the connection, which
    /// with a zero linger sends the peer a TCP reset instead of a clean close.
    fn check(&self) -> io::Result<()> {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by the simulator",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Handed to each request (as connect info): resets the connection the request came on.
#[derive(Debug, Clone)]
pub struct Resetter(Arc<AtomicBool>);

impl Resetter {
    /// The resetter of the connection `request` came on, when it came through a
    /// [`ResettableListener`].
    pub fn of(request: &Request) -> Option<Resetter> {
        request
            .extensions()
            .get::<ConnectInfo<Resetter>>()
            .map(|info| info.0.clone())
    }

    /// Reset the connection: the answer being written is never sent.
    pub fn reset(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, ResettableListener>> for Resetter {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        Resetter(stream.io().reset.clone())
    }
}
