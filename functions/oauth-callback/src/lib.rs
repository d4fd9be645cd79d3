//! `oauth-callback`: the public route providers redirect the browser to after consent. It
//! always answers with a redirect to the configured setup page, never anywhere else.

use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::SecretString;
use shared::connections::{self, CallbackParams};
use shared::Services;
use tracing::Instrument;

pub async fn handle(
    services: &Services,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let span = tracing::info_span!("oauth_callback", request_id = %request_id);
    async {
        let provider = provider_segment(&request);
        let query = request.query_string_parameters();
        let params = CallbackParams {
            code: query
                .first("code")
                .map(|c| SecretString::from(c.to_string())),
            state: query.first("state").map(str::to_string),
            error: query.first("error").map(str::to_string),
            extras: query
                .iter()
                .filter(|(name, _)| !matches!(*name, "code" | "state" | "error"))
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        };
        let target = connections::complete_authorization(services, &provider, params).await;
        Ok(Response::builder()
            .status(302)
            .header("location", target.as_str())
            // The URL that brought the browser here held a code: don't cache, don't leak it.
            .header("cache-control", "no-store")
            .header("referrer-policy", "no-referrer")
            .body(Body::Empty)
            .expect("a URL is a valid header value"))
    }
    .instrument(span)
    .await
}

/// `{provider}` from `/oauth/{provider}/callback` (path parameters when API Gateway sends them).
fn provider_segment(request: &Request) -> String {
    if let Some(p) = request.path_parameters().first("provider") {
        return p.to_string();
    }
    let segments: Vec<&str> = request.uri().path().split('/').collect();
    match segments.as_slice() {
        [.., "oauth", provider, "callback"] => provider.to_string(),
        _ => String::new(),
    }
}
