//! What the simulators' own tests share.

use serde_json::Value;

use super::log::parse_body;

/// The status and body of an answer (the body as [`parse_body`] reads it).
pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("an answer body");
    (status, parse_body(&text))
}

/// `GET url`, answered with JSON.
pub async fn get_json(url: String) -> Value {
    reqwest::Client::new()
        .get(url)
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("a JSON answer")
}
