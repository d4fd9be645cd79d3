//! `provider-sim --listen 127.0.0.1:PORT [--zoho-listen 127.0.0.1:PORT] [--freshsales-listen 127.0.0.1:PORT]
//!  [--salesforce-listen 127.0.0.1:PORT]`
//!
//! Runs the HubSpot simulator for the demo and for manual testing. Client
//! credentials default to `demo-client-id` / `demo-client-secret` and can be
//! overridden with `HUBSPOT_CLIENT_ID` / `HUBSPOT_CLIENT_SECRET`. Prints one
//! line, `provider-sim listening on http://ADDR`, then serves until the
//! process is interrupted (ctrl-c) or terminated (SIGTERM).
//!
//! With `--zoho-listen ADDR` it also runs the Zoho CRM simulator there (one
//! origin for every Zoho data centre; see `relay_tests::sim::zoho`) and prints
//! a second line, `zoho-sim listening on http://ADDR`. Its client credentials
//! default to `demo-zoho-client-id` / `demo-zoho-client-secret` and can be
//! overridden with `ZOHO_CLIENT_ID` / `ZOHO_CLIENT_SECRET`; its
//! `GET /_sim/state?dc=us` shows one data centre's records.
//!
//! With `--freshsales-listen ADDR` it also runs the Freshsales simulator (every account host
//! on one origin) with one account, `FRESHSALES_DEMO_DOMAIN` (default
//! `doha-motors.myfreshworks.com`) whose API key is `FRESHSALES_DEMO_API_KEY` (default
//! `demo-freshsales-key`), and prints `freshsales-sim listening on http://ADDR`; its
//! `GET /_sim/state?host=` shows that account's records.
//!
//! With `--salesforce-listen ADDR` it also runs the Salesforce simulator (every login host and
//! instance on one origin) with its two default orgs, `acme` (production, My Domain
//! `acme.my.salesforce.com`) and `acme-uat` (sandbox), whose Leads carry two custom fields
//! (`LeadRelay_Score__c`, `LeadRelay_Id__c`); credentials default to
//! `demo-salesforce-client-id` / `demo-salesforce-client-secret` (`SALESFORCE_CLIENT_ID` /
//! `SALESFORCE_CLIENT_SECRET`); `GET /_sim/state?org=acme` shows one org's records.
//!
//! With `--google-listen ADDR` it also runs the Google simulator with one spreadsheet
//! (`GOOGLE_SHEETS_DEMO_SPREADSHEET`, tab `Leads`) owned by `owner@souq-bakery.example`; with
//! `--bitrix-listen ADDR` the Bitrix24 simulator with one portal (`BITRIX24_DEMO_PORTAL`, default
//! `al-waha.bitrix24.com`) that has a second deal category, `Wholesale`. Credentials default to
//! `demo-google-client-id` / `demo-bitrix-client-id` and their `-secret` twins.
//!
//! Besides HubSpot's own endpoints (OAuth, pipelines, properties, contacts,
//! deals, notes), the simulator serves `GET /_sim/state`: every record and
//! association of the hub as JSON, without authentication. It is a
//! simulator-only endpoint (HubSpot has nothing like it) for the demo to
//! print what a lead became.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use relay_tests::sim::salesforce::SfField;
use relay_tests::sim::{
    BitrixSim, BitrixSimConfig, FreshsalesSim, FreshsalesSimConfig, GoogleSim, GoogleSimConfig,
    HubSpotSim, HubSpotSimConfig, SalesforceSim, SalesforceSimConfig, ZohoSim, ZohoSimConfig,
};

const USAGE: &str = "usage: provider-sim --listen 127.0.0.1:PORT [--zoho-listen 127.0.0.1:PORT]
                    [--freshsales-listen 127.0.0.1:PORT] [--salesforce-listen 127.0.0.1:PORT]
                    [--google-listen 127.0.0.1:PORT] [--bitrix-listen 127.0.0.1:PORT]

Starts the HubSpot simulator on ADDR (port 0 picks a free port).
GET /_sim/state (simulator only, no auth) shows the stored contacts, deals,
notes and associations.
With --zoho-listen, also starts the Zoho CRM simulator (every data centre on
one origin; the relay names the meant host in X-Forwarded-Host). Its
GET /_sim/state?dc=us shows one data centre's leads, contacts, deals,
accounts and notes.
With --freshsales-listen, also starts the Freshsales simulator with one demo
account; GET /_sim/state?host= shows its contacts, deals and notes.
With --salesforce-listen, also starts the Salesforce simulator (orgs acme and
acme-uat); GET /_sim/state?org=acme shows one org's records.
With --google-listen, also starts the Google simulator (accounts, OAuth and Sheets
hosts) with one spreadsheet, GOOGLE_SHEETS_DEMO_SPREADSHEET, owned by
owner@souq-bakery.example; GET /_sim/state?spreadsheet= shows its rows.
With --bitrix-listen, also starts the Bitrix24 simulator (OAuth servers and
portals) with the portal BITRIX24_DEMO_PORTAL and a second deal category,
Wholesale; GET /_sim/state?portal= shows its contacts, deals and comments.
Environment: HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET, ZOHO_CLIENT_ID,
ZOHO_CLIENT_SECRET, FRESHSALES_DEMO_DOMAIN, FRESHSALES_DEMO_API_KEY,
SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET, GOOGLE_SHEETS_CLIENT_ID,
GOOGLE_SHEETS_CLIENT_SECRET, GOOGLE_SHEETS_DEMO_SPREADSHEET, BITRIX24_CLIENT_ID,
BITRIX24_CLIENT_SECRET, BITRIX24_DEMO_PORTAL, RUST_LOG.";

/// Where each simulator listens.
#[derive(Debug, PartialEq, Eq)]
struct Listen {
    hubspot: SocketAddr,
    zoho: Option<SocketAddr>,
    freshsales: Option<SocketAddr>,
    salesforce: Option<SocketAddr>,
    google: Option<SocketAddr>,
    bitrix: Option<SocketAddr>,
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr> {
    value
        .parse()
        .with_context(|| format!("{flag} {value:?} is not an IP:PORT address"))
}

/// Every flag takes an address, as `--flag ADDR` or `--flag=ADDR`.
const FLAGS: [&str; 6] = [
    "--listen",
    "--zoho-listen",
    "--freshsales-listen",
    "--salesforce-listen",
    "--google-listen",
    "--bitrix-listen",
];

fn parse_listen(args: impl IntoIterator<Item = String>) -> Result<Listen> {
    let mut args = args.into_iter();
    let mut given: std::collections::HashMap<&'static str, SocketAddr> = Default::default();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let Some(flag) = FLAGS.iter().copied().find(|f| *f == name) else {
            bail!("unexpected argument {arg:?}\n\n{USAGE}");
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .with_context(|| format!("{flag} needs an address"))?,
        };
        given.insert(flag, parse_addr(flag, &value)?);
    }
    Ok(Listen {
        hubspot: *given
            .get("--listen")
            .with_context(|| format!("missing --listen\n\n{USAGE}"))?,
        zoho: given.get("--zoho-listen").copied(),
        freshsales: given.get("--freshsales-listen").copied(),
        salesforce: given.get("--salesforce-listen").copied(),
        google: given.get("--google-listen").copied(),
        bitrix: given.get("--bitrix-listen").copied(),
    })
}

/// The demo spreadsheet's id unless `GOOGLE_SHEETS_DEMO_SPREADSHEET` names another (44
/// characters, as Google's are).
const DEMO_SPREADSHEET: &str = "1SouqBakeryLeadRelayDemoSheet000000000000000";

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

    let listen = parse_listen(std::env::args().skip(1))?;
    let addr = listen.hubspot;
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

    let zoho = match listen.zoho {
        Some(zoho_addr) => {
            let config = ZohoSimConfig {
                client_id: env_or("ZOHO_CLIENT_ID", "demo-zoho-client-id")?,
                client_secret: env_or("ZOHO_CLIENT_SECRET", "demo-zoho-client-secret")?,
                ..ZohoSimConfig::default()
            };
            let zoho = ZohoSim::start_on(zoho_addr, config)
                .await
                .with_context(|| format!("binding {zoho_addr}"))?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "zoho-sim listening on {}", zoho.base_url())?;
            stdout.flush()?;
            Some(zoho)
        }
        None => None,
    };

    let freshsales = match listen.freshsales {
        Some(addr) => {
            let sim = FreshsalesSim::start_on(addr, FreshsalesSimConfig::default())
                .await
                .with_context(|| format!("binding {addr}"))?;
            sim.add_account(
                &env_or("FRESHSALES_DEMO_DOMAIN", "doha-motors.myfreshworks.com")?,
                &env_or("FRESHSALES_DEMO_API_KEY", "demo-freshsales-key")?,
            );
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "freshsales-sim listening on {}", sim.base_url())?;
            stdout.flush()?;
            Some(sim)
        }
        None => None,
    };

    let salesforce = match listen.salesforce {
        Some(addr) => {
            let config = SalesforceSimConfig {
                client_id: env_or("SALESFORCE_CLIENT_ID", "demo-salesforce-client-id")?,
                client_secret: env_or("SALESFORCE_CLIENT_SECRET", "demo-salesforce-client-secret")?,
                ..SalesforceSimConfig::default()
            };
            let orgs: Vec<String> = config.orgs.iter().map(|o| o.key.clone()).collect();
            let sim = SalesforceSim::start_on(addr, config)
                .await
                .with_context(|| format!("binding {addr}"))?;
            for org in &orgs {
                sim.add_field(
                    org,
                    "Lead",
                    SfField::double("LeadRelay_Score__c", "LeadRelay score"),
                );
                sim.add_field(
                    org,
                    "Lead",
                    SfField::string("LeadRelay_Id__c", "LeadRelay id", 64),
                );
            }
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "salesforce-sim listening on {}", sim.base_url())?;
            stdout.flush()?;
            Some(sim)
        }
        None => None,
    };

    let google = match listen.google {
        Some(addr) => {
            let config = GoogleSimConfig {
                client_id: env_or("GOOGLE_SHEETS_CLIENT_ID", "demo-google-client-id")?,
                client_secret: env_or("GOOGLE_SHEETS_CLIENT_SECRET", "demo-google-client-secret")?,
                ..GoogleSimConfig::default()
            };
            let sim = GoogleSim::start_on(addr, config)
                .await
                .with_context(|| format!("binding {addr}"))?;
            sim.add_spreadsheet_with_id(
                "owner@souq-bakery.example",
                &env_or("GOOGLE_SHEETS_DEMO_SPREADSHEET", DEMO_SPREADSHEET)?,
                "Souq Bakery leads",
                &["Leads", "Notes"],
            );
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "google-sim listening on {}", sim.base_url())?;
            stdout.flush()?;
            Some(sim)
        }
        None => None,
    };

    let bitrix = match listen.bitrix {
        Some(addr) => {
            let config = BitrixSimConfig {
                client_id: env_or("BITRIX24_CLIENT_ID", "demo-bitrix-client-id")?,
                client_secret: env_or("BITRIX24_CLIENT_SECRET", "demo-bitrix-client-secret")?,
                ..BitrixSimConfig::default()
            };
            let sim = BitrixSim::start_on(addr, config)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let portal = env_or("BITRIX24_DEMO_PORTAL", "al-waha.bitrix24.com")?;
            sim.add_portal(&portal);
            sim.add_category(&portal, "Wholesale", &[]);
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "bitrix-sim listening on {}", sim.base_url())?;
            stdout.flush()?;
            Some(sim)
        }
        None => None,
    };

    // The workspace builds tokio without its `signal` feature, so no handler
    // is installed: SIGINT (ctrl-c) and SIGTERM keep their default action and
    // end the process, which is all a stateless-on-disk simulator needs.
    std::future::pending::<()>().await;
    drop(bitrix);
    drop(google);
    drop(salesforce);
    drop(freshsales);
    drop(zoho);
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
        let only = parse_listen(args(&["--listen", "127.0.0.1:8089"])).unwrap();
        assert_eq!(only.hubspot.port(), 8089);
        assert_eq!(only.zoho, None);
        assert_eq!(
            parse_listen(args(&["--listen=127.0.0.1:0"]))
                .unwrap()
                .hubspot
                .port(),
            0
        );
        assert!(parse_listen(args(&[])).is_err());
        assert!(parse_listen(args(&["--listen", "localhost"])).is_err());
        assert!(parse_listen(args(&["--bogus"])).is_err());
    }

    #[test]
    fn parses_the_zoho_listen_forms() {
        let both = parse_listen(args(&[
            "--listen",
            "127.0.0.1:8089",
            "--zoho-listen",
            "127.0.0.1:8090",
        ]))
        .unwrap();
        assert_eq!(both.hubspot.port(), 8089);
        assert_eq!(both.zoho.map(|a| a.port()), Some(8090));
        let equals =
            parse_listen(args(&["--zoho-listen=127.0.0.1:0", "--listen=127.0.0.1:1"])).unwrap();
        assert_eq!(equals.zoho.map(|a| a.port()), Some(0));
        assert!(parse_listen(args(&["--zoho-listen", "127.0.0.1:1"])).is_err());
        assert!(parse_listen(args(&["--listen", "127.0.0.1:1", "--zoho-listen"])).is_err());
        assert!(parse_listen(args(&["--listen", "127.0.0.1:1", "--zoho-listen", "nope"])).is_err());
    }

    #[test]
    fn parses_the_freshsales_listen_forms() {
        let all = parse_listen(args(&[
            "--listen=127.0.0.1:1",
            "--zoho-listen=127.0.0.1:2",
            "--freshsales-listen",
            "127.0.0.1:3",
        ]))
        .unwrap();
        assert_eq!(all.freshsales.map(|a| a.port()), Some(3));
        let equals = parse_listen(args(&[
            "--listen=127.0.0.1:1",
            "--freshsales-listen=127.0.0.1:4",
        ]))
        .unwrap();
        assert_eq!(
            (equals.zoho, equals.freshsales.map(|a| a.port())),
            (None, Some(4))
        );
        assert!(parse_listen(args(&["--listen=127.0.0.1:1", "--freshsales-listen"])).is_err());
    }

    #[test]
    fn parses_the_salesforce_listen_forms() {
        let spaced = parse_listen(args(&[
            "--listen=127.0.0.1:1",
            "--salesforce-listen",
            "127.0.0.1:5",
        ]))
        .unwrap();
        assert_eq!(spaced.salesforce.map(|a| a.port()), Some(5));
        let equals = parse_listen(args(&[
            "--listen=127.0.0.1:1",
            "--salesforce-listen=127.0.0.1:6",
        ]))
        .unwrap();
        assert_eq!(equals.salesforce.map(|a| a.port()), Some(6));
        assert!(parse_listen(args(&["--listen=127.0.0.1:1", "--salesforce-listen"])).is_err());
    }

    #[test]
    fn parses_the_google_and_bitrix_flags_and_refuses_strangers() {
        let both = parse_listen(args(&[
            "--listen=127.0.0.1:1",
            "--google-listen",
            "127.0.0.1:7",
            "--bitrix-listen=127.0.0.1:8",
        ]))
        .unwrap();
        assert_eq!(both.google.map(|a| a.port()), Some(7));
        assert_eq!(both.bitrix.map(|a| a.port()), Some(8));
        assert!(parse_listen(args(&["--listen=127.0.0.1:1", "--pipedrive-listen=1"])).is_err());
        assert!(parse_listen(args(&["--google-listen=127.0.0.1:7"])).is_err());
    }
}
