//! The shell on its own: a one-route simulator that counts what it handled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::watch;

use super::faults::{Fault, FaultRoute, Lost};
use super::log::{self, Logged, RecordedRequest};
use super::{Call, Shell, ShellHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestRoute {
    Write,
    Read,
    Any,
}

impl FaultRoute for TestRoute {
    const WILDCARD: TestRoute = TestRoute::Any;
}

/// The simulator's own request record: the captured request and its answer.
#[derive(Debug, Clone)]
struct Entry {
    request: RecordedRequest,
    status: Option<u16>,
}

impl Logged for Entry {
    fn method(&self) -> &str {
        &self.request.method
    }

    fn path(&self) -> &str {
        &self.request.path
    }
}

struct Sim {
    shell: Arc<Shell<TestRoute, Entry>>,
    /// How many requests the handler applied.
    handled: watch::Sender<usize>,
}

async fn intercept(State(sim): State<Arc<Sim>>, request: Request) -> Response {
    let (recorded, request) = log::capture(request).await;
    let path = recorded.path.clone();
    let route = match path.as_str() {
        "/write" => Some(TestRoute::Write),
        "/read" => Some(TestRoute::Read),
        _ => None,
    };
    let applies = move |queued: &TestRoute| Some(*queued) == route;
    let call = Call::new(
        Entry {
            request: recorded,
            status: None,
        },
        &request,
    );
    let handle = {
        let sim = sim.clone();
        async move {
            sim.handled.send_modify(|n| *n += 1);
            (StatusCode::OK, "{\"ok\":true}").into_response()
        }
    };
    sim.shell
        .intercept(
            call,
            (path != "/health").then_some(&applies as _),
            handle,
            || (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
            |entry, response| entry.status = Some(response.status().as_u16()),
        )
        .await
}

async fn start() -> (ShellHandle<TestRoute, Entry>, Arc<Sim>) {
    let sim = Arc::new(Sim {
        shell: Shell::new(),
        handled: watch::Sender::new(0),
    });
    let router = Router::new().fallback(intercept).with_state(sim.clone());
    let handle = sim
        .shell
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)), router)
        .await
        .expect("bind");
    (handle, sim)
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
}

async fn post(
    handle: &ShellHandle<TestRoute, Entry>,
    path: &str,
) -> reqwest::Result<(u16, String)> {
    post_within(handle, path, Duration::from_secs(10)).await
}

async fn post_within(
    handle: &ShellHandle<TestRoute, Entry>,
    path: &str,
    timeout: Duration,
) -> reqwest::Result<(u16, String)> {
    let response = client(timeout)
        .post(format!("{}{path}", handle.base_url()))
        .body("x=1")
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

impl Sim {
    fn handled(&self) -> usize {
        *self.handled.borrow()
    }

    /// Resolves once the handler applied `n` requests in all.
    async fn wait_handled(&self, n: usize) {
        let mut handled = self.handled.subscribe();
        tokio::time::timeout(Duration::from_secs(10), handled.wait_for(|h| *h >= n))
            .await
            .expect("the handler ran in time")
            .expect("the sender lives");
    }
}

#[tokio::test]
async fn lifecycle_serves_until_shutdown_and_stops_when_dropped() {
    let (handle, sim) = start().await;
    assert_eq!(handle.base_url(), format!("http://{}", handle.addr()));
    assert_eq!(post(&handle, "/write").await.unwrap().0, 200);

    let clone = handle.clone();
    clone.shutdown();
    clone.shutdown(); // idempotent
    assert!(post(&handle, "/write").await.is_err());
    assert_eq!(sim.handled(), 1);

    // Dropping the last handle stops a server too.
    let (handle, _sim) = start().await;
    let url = format!("{}/write", handle.base_url());
    drop(handle);
    let refused = client(Duration::from_secs(5)).post(url).send().await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn log_records_every_request_with_its_answer() {
    let (handle, _sim) = start().await;
    post(&handle, "/write").await.unwrap();
    handle.inject(TestRoute::Read, Fault::Status(503, "down".into()));
    post(&handle, "/read").await.unwrap();

    let requests = handle.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].request.method, "POST");
    assert_eq!(requests[0].request.body, "x=1");
    assert_eq!(requests[0].status, Some(200));
    assert_eq!(requests[1].status, Some(503));
    assert_eq!(handle.count("post", "/read"), 1);
    assert_eq!(handle.count("GET", "/read"), 0);

    handle.clear_requests();
    assert!(handle.requests().is_empty());
}

#[test]
fn log_slots_survive_a_clear() {
    let log = log::RequestLog::<RecordedRequest>::new();
    let request = |path: &str| RecordedRequest {
        method: "GET".into(),
        path: path.into(),
        query: String::new(),
        headers: Default::default(),
        body: String::new(),
        at: std::time::Instant::now(),
    };
    let first = log.push(request("/a"));
    log.clear();
    let second = log.push(request("/b"));
    // The cleared slot no longer names anything, not the new entry.
    log.update(first, |r| r.body = "wrong".into());
    log.update(second, |r| r.body = "right".into());
    let all = log.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].body, "right");
    log.extend([request("/c")]);
    assert_eq!(log.count_where(|r| r.path.starts_with('/')), 2);
}

#[tokio::test]
async fn status_garbage_and_throttle_answer_without_handling() {
    let (handle, sim) = start().await;
    handle.inject(TestRoute::Write, Fault::Status(502, "{\"e\":1}".into()));
    handle.inject(TestRoute::Write, Fault::Garbage);
    handle.inject(TestRoute::Write, Fault::Throttle);

    assert_eq!(
        post(&handle, "/write").await.unwrap(),
        (502, "{\"e\":1}".into())
    );
    let (status, body) = post(&handle, "/write").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_err(),
        "{body}"
    );
    assert_eq!(
        post(&handle, "/write").await.unwrap(),
        (429, "slow down".into())
    );
    assert_eq!(sim.handled(), 0);
    assert_eq!(handle.pending_faults(), 0);
    // The next one is handled normally.
    assert_eq!(post(&handle, "/write").await.unwrap().0, 200);
    assert_eq!(sim.handled(), 1);
}

#[tokio::test]
async fn delay_handles_after_waiting_and_a_client_that_gives_up_first_leaves_it_unhandled() {
    let (handle, sim) = start().await;
    handle.inject(TestRoute::Write, Fault::Delay(Duration::from_millis(50)));
    assert_eq!(post(&handle, "/write").await.unwrap().0, 200);
    assert_eq!(sim.handled(), 1);

    handle.inject(TestRoute::Write, Fault::Delay(Duration::from_secs(30)));
    let gave_up = post_within(&handle, "/write", Duration::from_millis(200)).await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    // The request was logged, never answered, and never handled.
    assert_eq!(handle.requests()[1].status, None);
    assert_eq!(sim.handled(), 1);
}

#[tokio::test]
async fn delay_after_applies_even_when_the_client_gives_up() {
    let (handle, sim) = start().await;
    handle.inject(TestRoute::Write, Fault::DelayAfter(Duration::from_secs(30)));
    let gave_up = post_within(&handle, "/write", Duration::from_millis(200)).await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    sim.wait_handled(1).await;

    handle.inject(
        TestRoute::Write,
        Fault::DelayAfter(Duration::from_millis(20)),
    );
    assert_eq!(post(&handle, "/write").await.unwrap().0, 200);
    assert_eq!(sim.handled(), 2);
}

#[tokio::test]
async fn lose_answer_applies_then_answers_something_else() {
    let (handle, sim) = start().await;
    handle.inject(
        TestRoute::Write,
        Fault::LoseAnswer(Lost::Status(504, "gateway timeout".into())),
    );
    handle.inject(TestRoute::Write, Fault::LoseAnswer(Lost::Garbage));
    handle.inject(TestRoute::Write, Fault::LoseAnswer(Lost::Reset));

    assert_eq!(
        post(&handle, "/write").await.unwrap(),
        (504, "gateway timeout".into())
    );
    assert_eq!(sim.handled(), 1);
    let (status, body) = post(&handle, "/write").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("not JSON"), "{body}");
    assert_eq!(sim.handled(), 2);

    let reset = post(&handle, "/write").await;
    assert!(
        reset.is_err(),
        "a reset connection answers nothing: {reset:?}"
    );
    assert_eq!(sim.handled(), 3);
    // What the client got is logged; a reset got nothing.
    let statuses: Vec<_> = handle.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(504), Some(200), None]);
    // The simulator still serves new connections.
    assert_eq!(post(&handle, "/write").await.unwrap().0, 200);
}

#[tokio::test]
async fn hang_never_answers_and_never_handles_until_the_server_stops() {
    let (handle, sim) = start().await;
    handle.inject(TestRoute::Write, Fault::Hang);
    let gave_up = post_within(&handle, "/write", Duration::from_millis(300)).await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    assert_eq!(sim.handled(), 0);

    // A hanging request ends when the simulator stops.
    handle.inject(TestRoute::Write, Fault::Hang);
    let waiting = tokio::spawn({
        let handle = handle.clone();
        async move { post(&handle, "/write").await }
    });
    // Wait until the hanging request has been logged (it arrived).
    tokio::time::timeout(Duration::from_secs(10), async {
        while handle.requests().len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the request arrived");
    handle.shutdown();
    let ended = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the hang ended with the server")
        .expect("task");
    assert_eq!(ended.map(|(status, _)| status).ok(), Some(503));
    assert_eq!(sim.handled(), 0);
}

#[tokio::test]
async fn hang_after_apply_handles_then_never_answers() {
    let (handle, sim) = start().await;
    handle.inject(TestRoute::Any, Fault::HangAfterApply);
    let gave_up = post_within(&handle, "/read", Duration::from_millis(300)).await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    sim.wait_handled(1).await;
    assert_eq!(handle.requests()[0].status, None);
}

#[tokio::test]
async fn nth_fires_on_the_nth_matching_request_and_health_is_never_faulted() {
    let (handle, sim) = start().await;
    handle.inject_nth(TestRoute::Write, 3, Fault::Status(500, "third".into()));
    handle.inject(TestRoute::Any, Fault::Status(500, "any".into()));

    // Health is logged but never faulted, not even by the wildcard.
    assert_eq!(post(&handle, "/health").await.unwrap().0, 200);
    assert_eq!(post(&handle, "/read").await.unwrap(), (500, "any".into()));
    assert_eq!(post(&handle, "/write").await.unwrap().0, 200);
    assert_eq!(post(&handle, "/read").await.unwrap().0, 200);
    assert_eq!(post(&handle, "/write").await.unwrap().0, 200);
    assert_eq!(
        post(&handle, "/write").await.unwrap(),
        (500, "third".into())
    );
    assert_eq!(sim.handled(), 4);
    assert_eq!(handle.count("POST", "/health"), 1);
    assert_eq!(handle.pending_faults(), 0);
}
