//! `provider-sim --listen 127.0.0.1:PORT`
//!
//! Runs the HubSpot simulator for the demo and for manual testing. Client
//! credentials default to `demo-client-id` / `demo-client-secret` and can be
//! overridden with `HUBSPOT_CLIENT_ID` / `HUBSPOT_CLIENT_SECRET`. Prints one
//! line, `provider-sim listening on http://ADDR`, then serves until the
//! process is interrupted (ctrl-c) or terminated (SIGTERM).
//!
//! Besides HubSpot's own endpoints (OAuth, pipelines, properties, contacts,
//! deals, notes), the simulator serves `GET /_sim/state`: every record and
//! association of the hub as JSON, without authentication. It is a
//! simulator-only endpoint (HubSpot has nothing like it) for the demo to
//! print what a lead became.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use relay_tests::sim::{HubSpotSim, HubSpotSimConfig};

const USAGE: &str = "usage: provider-sim --listen 127.0.0.1:PORT

Starts the HubSpot simulator on ADDR (port 0 picks a free port).
GET /_sim/state (simulator only, no auth) shows the stored contacts, deals,
notes and associations.
Environment: HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET, RUST_LOG.";

fn parse_listen(args: impl IntoIterator<Item = String>) -> Result<SocketAddr> {
    let mut args = args.into_iter();
    let mut listen: Option<String> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--listen" => {
                listen = Some(args.next().context("--listen needs an address")?);
            }
            other => match other.strip_prefix("--listen=") {
                Some(value) => listen = Some(value.to_owned()),
                None => bail!("unexpected argument {other:?}\n\n{USAGE}"),
            },
        }
    }
    let listen = listen.with_context(|| format!("missing --listen\n\n{USAGE}"))?;
    listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not an IP:PORT address"))
}

fn env_or(name: &str, default: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(default.to_owned()),
        Err(error) => Err(error).with_context(|| format!("reading {name}")),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let addr = parse_listen(std::env::args().skip(1))?;
    let config = HubSpotSimConfig {
        client_id: env_or("HUBSPOT_CLIENT_ID", "demo-client-id")?,
        client_secret: env_or("HUBSPOT_CLIENT_SECRET", "demo-client-secret")?,
        ..HubSpotSimConfig::default()
    };
    let sim = HubSpotSim::start_on(addr, config)
        .await
        .with_context(|| format!("binding {addr}"))?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "provider-sim listening on {}", sim.base_url())?;
    stdout.flush()?;
    drop(stdout);

    // The workspace builds tokio without its `signal` feature, so no handler
    // is installed: SIGINT (ctrl-c) and SIGTERM keep their default action and
    // end the process, which is all a stateless-on-disk simulator needs.
    std::future::pending::<()>().await;
    drop(sim);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_listen;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_listen_forms() {
        assert_eq!(
            parse_listen(args(&["--listen", "127.0.0.1:8089"]))
                .unwrap()
                .port(),
            8089
        );
        assert_eq!(
            parse_listen(args(&["--listen=127.0.0.1:0"]))
                .unwrap()
                .port(),
            0
        );
        assert!(parse_listen(args(&[])).is_err());
        assert!(parse_listen(args(&["--listen", "localhost"])).is_err());
        assert!(parse_listen(args(&["--bogus"])).is_err());
    }
}
