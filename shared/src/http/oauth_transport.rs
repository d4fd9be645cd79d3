//! Lets the `oauth2` crate send its token requests through [`HttpClient`], so token calls get
//! the same timeouts, throttling rules, retry policy and redacted spans as every API call.

use reqwest::header::CONTENT_TYPE;
use url::Url;

use super::{Body, HttpClient, Idempotency, OutboundRequest};
use crate::error::ProviderError;
use crate::registry::{Provider, TokenRequest};

impl HttpClient {
    pub(crate) async fn oauth_call(
        &self,
        provider: Provider,
        operation: &'static str,
        idempotency: Idempotency,
        token_request: TokenRequest,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, ProviderError> {
        let (parts, bytes) = request.into_parts();
        let mut url = Url::parse(&parts.uri.to_string()).map_err(|_| ProviderError::Rejected {
            provider,
            status: 0,
            code: "bad_url".into(),
            message: "the token URL is not absolute".into(),
        })?;
        let mut headers = parts.headers;
        if let Some(auth) = headers.get_mut(reqwest::header::AUTHORIZATION) {
            auth.set_sensitive(true);
        }
        let content_type = headers.remove(CONTENT_TYPE);
        let (method, body) = match token_request {
            TokenRequest::FormPost => (
                parts.method,
                Body::Raw {
                    content_type,
                    bytes,
                },
            ),
            // The form `oauth2` built goes into the query instead (spans print parameter names
            // only). `redirect_uri` stays out: this request's documented parameters are the
            // grant, the client credentials and the code or refresh token.
            TokenRequest::QueryGet => {
                let fields: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
                    .filter(|(name, _)| name != "redirect_uri")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut().extend_pairs(fields);
                (reqwest::Method::GET, Body::Empty)
            }
        };
        let mut outbound =
            OutboundRequest::new(provider, operation, method, url).idempotency(idempotency);
        outbound.headers = headers;
        outbound.body = body;
        let response = self.send(outbound).await?;
        let mut builder = http::Response::builder().status(response.status);
        if let Some(headers) = builder.headers_mut() {
            *headers = response.headers;
        }
        let body = if response.status == 200 {
            with_token_type(response.body)
        } else {
            response.body
        };
        builder.body(body).map_err(|_| ProviderError::Garbage {
            provider,
            status: response.status,
            detail: "unreadable response head".into(),
        })
    }
}

/// A token answer without `token_type` (Bitrix24's: RFC 6749 requires it and `oauth2` refuses
/// an answer that lacks it) is read as a bearer token, which is what it is; any other body is
/// passed on untouched.
fn with_token_type(body: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut fields))
            if fields.contains_key("access_token") && !fields.contains_key("token_type") =>
        {
            fields.insert("token_type".into(), "bearer".into());
            serde_json::to_vec(&fields).unwrap_or(body)
        }
        _ => body,
    }
}

/// The `oauth2` crate's view of [`HttpClient`] for one provider and operation. A named type with
/// a boxed `Send` future (rather than a closure) keeps the calling futures `Send`.
pub(crate) struct OAuthTransport {
    /// Owned (a cheap clone of shared handles): a borrowed client trips a higher-ranked
    /// lifetime bound in `oauth2`'s `request_async` inside `Send` futures.
    pub http: HttpClient,
    pub provider: Provider,
    pub operation: &'static str,
    pub idempotency: Idempotency,
    pub token_request: TokenRequest,
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthTransport {
    type Error = ProviderError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, ProviderError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.http.oauth_call(
            self.provider,
            self.operation,
            self.idempotency,
            self.token_request,
            request,
        ))
    }
}
