//! Provider-agnostic server lifecycle: bind, serve in the background, stop on
//! request or when the last handle is dropped.

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::oneshot;

/// A running axum server. Dropping it (or calling [`ServerHandle::shutdown`])
/// stops accepting connections and lets in-flight requests finish.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl ServerHandle {
    /// Bind `addr` (port 0 picks a free port) and serve `router` on the
    /// current tokio runtime.
    pub async fn spawn(addr: SocketAddr, router: Router) -> std::io::Result<ServerHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Either an explicit stop or the handle being dropped.
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%addr, %error, "simulator server stopped with an error");
            }
        });
        Ok(ServerHandle {
            addr,
            stop: Mutex::new(Some(stop_tx)),
        })
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
        let sender = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
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
