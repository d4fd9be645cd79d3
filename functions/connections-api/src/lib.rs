//! `connections-api`: the setup pages' routes behind API Gateway's JWT authorizer.
//!
//! Thin by design: find the route, read the caller from the verified JWT claims (never from the
//! body or query), call one use case in `shared`, turn the result into JSON.

mod routes;

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::json;
use shared::connections::{self, ApiKeyInput, SettingsInput};
use shared::identity::Caller;
use shared::leads;
use shared::provider::LoginChoice;
use shared::refresh::deadline;
use shared::{Error, Provider, Services};
use tracing::Instrument;

pub use routes::{Route, ROUTES};

/// Handles one API Gateway HTTP API (v2) request.
pub async fn handle(
    services: &Services,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    // No rotating refresh starts that the invocation's deadline could cut short.
    let until = request
        .lambda_context_ref()
        .and_then(|c| deadline::from_epoch_ms(c.deadline));
    let span = tracing::info_span!(
        "connections_api",
        request_id = %request_id,
        route = tracing::field::Empty,
        tenant = tracing::field::Empty
    );
    let response = deadline::within(until, async {
        match dispatch(services, &request).await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        }
    })
    .instrument(span)
    .await;
    Ok(response)
}

async fn dispatch(services: &Services, request: &Request) -> Result<Response<Body>, Error> {
    let (route, parameter) = routes::resolve(request.method().as_str(), request.uri().path())
        .ok_or_else(|| Error::NotFound("route".into()))?;
    tracing::Span::current().record("route", route.template());
    let caller = caller(services, request)?;
    // The one path parameter is a provider on every route but the lead's.
    let provider = match (route, parameter) {
        (Route::LeadSync, _) | (_, None) => None,
        (_, Some(slug)) => Some(
            slug.parse::<Provider>()
                .map_err(|_| Error::NotFound(format!("provider {slug:?}")))?,
        ),
    };
    let provider = || provider.ok_or_else(|| Error::NotFound("provider".into()));
    match route {
        Route::LeadSync => {
            let lead_id = parameter.ok_or_else(|| Error::NotFound("lead".into()))?;
            json(200, &leads::lead_sync(services, &caller, lead_id).await?)
        }
        Route::Authorize => {
            // No body (or `{}`) means the provider's default login host.
            let login: LoginChoice = if body_is_empty(request) {
                LoginChoice::default()
            } else {
                parse_body(request)?
            };
            let subject = subject(request)?;
            json(
                200,
                &connections::start_authorization(services, &caller, &subject, provider()?, &login)
                    .await?,
            )
        }
        Route::Complete => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Body {
                completion_code: String,
            }
            // serde's messages may quote a value, and the value here is a one-time secret.
            let body: Body = parse_body(request).map_err(|_| {
                Error::BadRequest(
                    "the body must be {\"completion_code\": string} and nothing else".into(),
                )
            })?;
            let subject = subject(request)?;
            json(
                200,
                &connections::complete_connection(
                    services,
                    &caller,
                    &subject,
                    provider()?,
                    &body.completion_code,
                )
                .await?,
            )
        }
        Route::List => json(
            200,
            &json!({ "connections": connections::list_connections(services, &caller).await? }),
        ),
        Route::Pipelines => json(
            200,
            &json!({ "pipelines": connections::list_pipelines(services, &caller, provider()?).await? }),
        ),
        Route::Settings => {
            let input: SettingsInput = parse_body(request)?;
            json(
                200,
                &connections::save_settings(services, &caller, provider()?, input).await?,
            )
        }
        Route::Disconnect => json(
            200,
            &connections::disconnect(services, &caller, provider()?).await?,
        ),
        Route::ConnectFreshsales => {
            // serde's messages may quote a value, and a value here may be the key.
            let input: ApiKeyInput = parse_body(request).map_err(|_| {
                Error::BadRequest(
                    "the body must be {\"domain\": string, \"api_key\": string} and nothing else"
                        .into(),
                )
            })?;
            json(
                200,
                &connections::connect_with_api_key(services, &caller, Provider::Freshsales, input)
                    .await?,
            )
        }
    }
}

/// The tenant and plan come from the JWT authorizer's claims, which API Gateway verified.
fn caller(services: &Services, request: &Request) -> Result<Caller, Error> {
    let claims = match request.request_context() {
        lambda_http::request::RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .and_then(|a| a.jwt)
            .map(|jwt| jwt.claims)
            .ok_or(Error::Unauthorized(
                "no JWT authorizer claims on the request",
            ))?,
        _ => return Err(Error::Unauthorized("not an API Gateway HTTP API request")),
    };
    let caller = Caller::from_claims(
        &claims,
        &services.config.tenant_claim,
        &services.config.plan_claim,
    )?;
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    Ok(caller)
}

/// The signed-in user (the JWT's `sub`), which an OAuth connect is bound to: the user who
/// starts it is the only one who can complete it.
fn subject(request: &Request) -> Result<String, Error> {
    let claims = match request.request_context() {
        lambda_http::request::RequestContext::ApiGatewayV2(ctx) => ctx
            .authorizer
            .and_then(|a| a.jwt)
            .map(|jwt| jwt.claims)
            .unwrap_or_default(),
        _ => Default::default(),
    };
    claims
        .get("sub")
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .cloned()
        .ok_or(Error::Unauthorized("the token has no sub claim"))
}

fn body_is_empty(request: &Request) -> bool {
    match request.body() {
        Body::Text(text) => text.trim().is_empty(),
        Body::Binary(bytes) => bytes.iter().all(u8::is_ascii_whitespace),
        _ => true,
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Error> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("the JSON body is invalid: {e}")))
}

fn json<T: Serialize>(status: u16, body: &T) -> Result<Response<Body>, Error> {
    let text = serde_json::to_string(body).map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(text))
        .expect("static headers are valid"))
}

/// `{error, message}` with the right status. Server faults are logged in full and answered
/// generically.
pub fn error_response(error: &Error) -> Response<Body> {
    let status = error.status();
    if status >= 500 {
        tracing::error!(error = %error, code = error.code(), "request failed");
    } else {
        tracing::info!(error = %error, code = error.code(), "request refused");
    }
    let body = json!({ "error": error.code(), "message": error.public_message() });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(body.to_string()))
        .expect("static headers are valid")
}
