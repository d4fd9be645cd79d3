//! Captures every log line of the test process (JSON, debug level, all crates) so tests can
//! assert that no secret was ever logged.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

#[derive(Clone, Copy)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Installs the capturing subscriber once per process. Debug level everywhere, including the
/// AWS SDK and HTTP stacks: stricter than production (`info`).
pub fn install() {
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(EnvFilter::new("debug"))
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(Capture)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        // EMF metric lines join the captured log lines (as they would stdout on Lambda), so
        // the secret scans cover them too.
        shared::metrics::set_sink(|line| {
            let _ = Capture.write_all(format!("{line}\n").as_bytes());
        });
    });
}

/// Everything logged so far by this process.
pub fn captured() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Panics, naming the secret's label (never its value), if any captured line contains it.
pub fn assert_never_logged(label: &str, secret: &str) {
    assert!(
        secret.len() >= 8,
        "{label} is too short to search for meaningfully"
    );
    let logs = captured();
    assert!(!logs.is_empty(), "no logs were captured at all");
    assert!(!logs.contains(secret), "the {label} appeared in the logs");
}
