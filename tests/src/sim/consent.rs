//! What every simulated consent screen answers the browser with: a redirect back to the
//! client with query parameters, or an error page that never redirects.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// `302` to `target` with `pairs` appended to its query.
pub fn redirect_to<V: AsRef<str>>(
    product: &str,
    target: &url::Url,
    pairs: &[(&str, V)],
) -> Response {
    let mut location = target.clone();
    {
        let mut query = location.query_pairs_mut();
        for (key, value) in pairs {
            query.append_pair(key, value.as_ref());
        }
    }
    match HeaderValue::from_str(location.as_str()) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => error_page(
            product,
            "The redirect_uri cannot be used as a Location header.",
        ),
    }
}

/// A `400` HTML page naming what was wrong (escaped).
pub fn error_page(product: &str, reason: &str) -> Response {
    let escaped = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!DOCTYPE html><html><head><title>{product} (simulator) - authorization error</title></head>\
             <body><h1>Authorization failed</h1><p>{escaped}</p></body></html>"
        )),
    )
        .into_response()
}
