//! Lets the `oauth2` crate send its token requests through [`HttpClient`], so token calls get
//! the same timeouts, throttling rules, retry policy and redacted spans as every API call.

use reqwest::header::CONTENT_TYPE;
use url::Url;

use super::{Body, HttpClient, Idempotency, OutboundRequest};
use crate::error::ProviderError;
use crate::registry::Provider;

impl HttpClient {
    pub(crate) async fn oauth_call(
        &self,
        provider: Provider,
        operation: &'static str,
        idempotency: Idempotency,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, ProviderError> {
        let (parts, bytes) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string()).map_err(|_| ProviderError::Rejected {
            provider,
            status: 0,
            code: "bad_url".into(),
            message: "the token URL is not absolute".into(),
        })?;
        let mut outbound =
            OutboundRequest::new(provider, operation, parts.method, url).idempotency(idempotency);
        let content_type = parts.headers.get(CONTENT_TYPE).cloned();
        outbound.headers = parts.headers;
        if let Some(auth) = outbound.headers.get_mut(reqwest::header::AUTHORIZATION) {
            auth.set_sensitive(true);
        }
        outbound.body = Body::Raw {
            content_type,
            bytes,
        };
        let response = self.send(outbound).await?;
        let mut builder = http::Response::builder().status(response.status);
        if let Some(headers) = builder.headers_mut() {
            *headers = response.headers;
        }
        builder
            .body(response.body)
            .map_err(|_| ProviderError::Garbage {
                provider,
                status: response.status,
                detail: "unreadable response head".into(),
            })
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
        Box::pin(
            self.http
                .oauth_call(self.provider, self.operation, self.idempotency, request),
        )
    }
}
