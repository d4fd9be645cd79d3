//! Sheets API tests: spreadsheets.get, values get/append/update, RAW vs
//! USER_ENTERED, permissions, quota, quoted sheet names, faults.

use serde_json::{json, Value};

use super::oauth_tests::client;
use super::*;
use crate::sim::shell::testkit::get_json;

const OWNER: &str = "owner@example.com";
const HYPERLINK: &str = "=HYPERLINK(\"https://evil.example\",\"Click\")";

/// Percent-encode a range the way an HTTP client would put it in a path.
fn enc(range: &str) -> String {
    range
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('\'', "%27")
        .replace('"', "%22")
        .replace('/', "%2F")
}

struct Fixture {
    sim: GoogleSim,
    token: String,
    id: String,
}

async fn fixture(config: GoogleSimConfig, sheets: &[&str]) -> Fixture {
    let sim = GoogleSim::start(config).await;
    let token = sim.seed_connection(OWNER).access_token;
    let id = sim.add_spreadsheet(OWNER, "Leads 2026", sheets);
    Fixture { sim, token, id }
}

impl Fixture {
    /// `method` on `/v4/spreadsheets/{id}{tail}` (tail starts with `/` or `?`).
    async fn call(&self, method: &str, tail: &str, body: Option<Value>) -> (u16, Value) {
        call_as(
            &self.sim,
            &self.token,
            method,
            &format!("{}{tail}", self.id),
            body,
        )
        .await
    }

    async fn append(&self, range: &str, option: &str, values: Value) -> (u16, Value) {
        let tail = format!("/values/{}:append?valueInputOption={option}", enc(range));
        self.call("POST", &tail, Some(json!({"values": values})))
            .await
    }

    async fn update(&self, range: &str, option: &str, values: Value) -> (u16, Value) {
        let tail = format!("/values/{}?valueInputOption={option}", enc(range));
        self.call(
            "PUT",
            &tail,
            Some(json!({"range": range, "majorDimension": "ROWS", "values": values})),
        )
        .await
    }

    async fn get(&self, range: &str) -> (u16, Value) {
        self.call("GET", &format!("/values/{}", enc(range)), None)
            .await
    }
}

async fn call_as(
    sim: &GoogleSim,
    token: &str,
    method: &str,
    tail: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(
            method.parse().unwrap(),
            format!("{}{SPREADSHEETS_PREFIX}{tail}", sim.base_url()),
        )
        .header(FORWARDED_HOST_HEADER, SHEETS_HOST)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

#[tokio::test]
async fn spreadsheet_get_and_who_may_open_it() {
    let f = fixture(GoogleSimConfig::default(), &["Qualified", "Archive"]).await;
    assert_eq!(f.id.len(), 44);
    assert!(f
        .id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let (status, body) = f
        .call(
            "GET",
            "?fields=spreadsheetId,properties.title,sheets.properties",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spreadsheetId"], f.id);
    assert_eq!(body["properties"]["title"], "Leads 2026");
    assert_eq!(body["sheets"][0]["properties"]["sheetId"], 0);
    assert_eq!(body["sheets"][0]["properties"]["title"], "Qualified");
    assert_eq!(body["sheets"][1]["properties"]["index"], 1);
    assert!(body["sheets"][1]["properties"]["sheetId"].as_i64().unwrap() > 0);
    assert_eq!(
        body["spreadsheetUrl"],
        format!("https://docs.google.com/spreadsheets/d/{}/edit", f.id)
    );

    let (status, body) = call_as(&f.sim, &f.token, "GET", "doesNotExist", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["message"], "Requested entity was not found.");

    let stranger = f.sim.seed_connection("Someone@Else.example").access_token;
    let (status, body) = call_as(&f.sim, &stranger, "GET", &f.id, None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}})
    );
    let (status, _) = call_as(
        &f.sim,
        &stranger,
        "GET",
        &format!("{}/values/Qualified", f.id),
        None,
    )
    .await;
    assert_eq!(status, 403);
    f.sim.share(&f.id, "someone@else.example");
    let (status, _) = call_as(&f.sim, &stranger, "GET", &f.id, None).await;
    assert_eq!(status, 200);

    let (status, body) = call_as(&f.sim, "ya29.bogus", "GET", &f.id, None).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
    );
    let recorded = f.sim.api_requests();
    assert_eq!(recorded.len(), f.sim.api_calls());
    assert!(recorded
        .iter()
        .all(|r| !r.headers.contains_key("authorization")));
    assert_eq!(recorded[0].user.as_deref(), Some(OWNER));
}

#[tokio::test]
async fn append_to_an_empty_sheet_then_after_the_header_and_update_a_row() {
    let f = fixture(GoogleSimConfig::default(), &["Sheet1"]).await;
    let (status, body) = f.get("Sheet1!A1:I1").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"range": "Sheet1!A1:I1", "majorDimension": "ROWS"})
    );

    let header = json!([[
        "Time", "Name", "Phone", "Email", "Source", "Score", "Stage", "Summary", "Lead ID"
    ]]);
    let (status, body) = f.append("Sheet1!A1:I1", "RAW", header).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("tableRange").is_none(), "{body}");
    assert_eq!(body["spreadsheetId"], f.id);
    assert_eq!(
        body["updates"],
        json!({"spreadsheetId": f.id, "updatedRange": "Sheet1!A1:I1", "updatedRows": 1, "updatedColumns": 9, "updatedCells": 9})
    );
    let row = json!([[
        "2026-11-28",
        "Mariam",
        "+974555",
        "m@example.qa",
        "instagram",
        82,
        "new",
        "Hi",
        "lead-1"
    ]]);
    let (status, body) = f.append("Sheet1!A1:I1", "RAW", row.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tableRange"], "Sheet1!A1:I1");
    assert_eq!(body["updates"]["updatedRange"], "Sheet1!A2:I2");
    let (_, body) = f.append("Sheet1", "RAW", row).await;
    assert_eq!(body["tableRange"], "Sheet1!A1:I2");
    assert_eq!(body["updates"]["updatedRange"], "Sheet1!A3:I3");

    let rows = f.sim.rows(&f.id, "Sheet1");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][5], Cell::Number(82.0));
    assert_eq!(rows[1][2], text("+974555"));

    // Read back: formatted values, trailing empties dropped.
    let (_, body) = f.get("Sheet1!A2:I2").await;
    assert_eq!(body["values"][0][5], "82");
    assert_eq!(body["values"][0][8], "lead-1");
    let (_, body) = f.get("Sheet1!I:I").await;
    assert_eq!(body["range"], "Sheet1!I1:I1000");
    assert_eq!(body["values"], json!([["Lead ID"], ["lead-1"], ["lead-1"]]));
    let (_, body) = f
        .call(
            "GET",
            &format!(
                "/values/{}?valueRenderOption=UNFORMATTED_VALUE",
                enc("Sheet1!F2")
            ),
            None,
        )
        .await;
    assert_eq!(body["values"], json!([[82]]));

    // Update a row in place; a null leaves its cell alone.
    let changed = json!([[
        "2026-11-29",
        "Mariam",
        null,
        "m@example.qa",
        "instagram",
        90,
        "won",
        "Bought",
        "lead-1"
    ]]);
    let (status, body) = f.update("Sheet1!A2:I2", "RAW", changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"spreadsheetId": f.id, "updatedRange": "Sheet1!A2:I2", "updatedRows": 1, "updatedColumns": 9, "updatedCells": 8})
    );
    assert_eq!(f.sim.cell(&f.id, "Sheet1", 1, 6), text("won"));
    assert_eq!(f.sim.cell_a1(&f.id, "Sheet1", "C2"), text("+974555"));
    assert_eq!(f.sim.rows(&f.id, "Sheet1").len(), 3);

    // Too many rows or columns for the range; a body range that is not the URL's.
    let (status, body) = f
        .update("Sheet1!A2:B2", "RAW", json!([["a", "b"], ["c", "d"]]))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tried writing to row [3]"),
        "{body}"
    );
    let (status, body) = f
        .update("Sheet1!A2:B2", "RAW", json!([["a", "b", "c"]]))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("column [C]"),
        "{body}"
    );
    let tail = format!("/values/{}?valueInputOption=RAW", enc("Sheet1!A2:I2"));
    let (status, _) = f
        .call(
            "PUT",
            &tail,
            Some(json!({"range": "Sheet1!A3:I3", "values": [["x"]]})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(f.sim.cell(&f.id, "Sheet1", 1, 0), text("2026-11-29"));
}

#[tokio::test]
async fn raw_stores_text_while_user_entered_makes_formulas() {
    let f = fixture(GoogleSimConfig::default(), &[]).await;
    let (status, _) = f
        .append(
            "Sheet1!A1:E1",
            "RAW",
            json!([[HYPERLINK, "=1+1", "42", "TRUE", "'=x"]]),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = f
        .append(
            "Sheet1!A1:E1",
            "USER_ENTERED",
            json!([[HYPERLINK, "=1+1", "42", "TRUE", "'=x"]]),
        )
        .await;
    assert_eq!(status, 200);
    let rows = f.sim.rows(&f.id, "Sheet1");
    assert_eq!(
        rows[0],
        vec![
            text(HYPERLINK),
            text("=1+1"),
            text("42"),
            text("TRUE"),
            text("'=x")
        ]
    );
    assert_eq!(
        rows[1],
        vec![
            Cell::Formula(HYPERLINK.to_owned()),
            Cell::Formula("=1+1".to_owned()),
            Cell::Number(42.0),
            Cell::Bool(true),
            text("=x"),
        ]
    );
    let state = f.sim.state_json(&f.id);
    assert_eq!(
        state["sheets"][0]["rows"][1][0],
        json!({"formula": HYPERLINK})
    );
    assert_eq!(state["sheets"][0]["rows"][0][0], json!(HYPERLINK));
    let served = get_json(format!(
        "{}{SIM_STATE_PATH}?spreadsheet={}",
        f.sim.base_url(),
        f.id
    ))
    .await;
    assert_eq!(served, state);

    let (_, body) = f
        .call(
            "GET",
            &format!("/values/{}?valueRenderOption=FORMULA", enc("Sheet1!A2")),
            None,
        )
        .await;
    assert_eq!(body["values"], json!([[HYPERLINK]]));
}

#[tokio::test]
async fn writes_without_a_value_input_option_are_refused() {
    let f = fixture(GoogleSimConfig::default(), &[]).await;
    let body = json!({"values": [["a"]]});
    for (method, tail) in [
        ("POST", format!("/values/{}:append", enc("Sheet1!A1:I1"))),
        ("PUT", format!("/values/{}", enc("Sheet1!A1:I1"))),
        (
            "POST",
            format!(
                "/values/{}:append?valueInputOption=RAWISH",
                enc("Sheet1!A1")
            ),
        ),
    ] {
        let (status, answer) = f.call(method, &tail, Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {tail}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
    }
    let (_, answer) = f
        .call("PUT", &format!("/values/{}", enc("Sheet1!A1")), Some(body))
        .await;
    assert_eq!(
        answer["error"]["message"],
        "'valueInputOption' is required but not specified"
    );
    assert!(f.sim.rows(&f.id, "Sheet1").is_empty());
}

#[tokio::test]
async fn quota_per_user_per_minute_answers_429_without_retry_after() {
    let config = GoogleSimConfig {
        per_user_per_minute: 3,
        ..GoogleSimConfig::default()
    };
    let f = fixture(config, &[]).await;
    for _ in 0..3 {
        assert_eq!(f.get("Sheet1!A1").await.0, 200);
    }
    let response = client()
        .get(format!("{}{SPREADSHEETS_PREFIX}{}", f.sim.base_url(), f.id))
        .header(FORWARDED_HOST_HEADER, SHEETS_HOST)
        .bearer_auth(&f.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Quota exceeded"));

    // Another user has a quota of their own.
    f.sim.share(&f.id, "other@example.com");
    let other = f.sim.seed_connection("other@example.com").access_token;
    assert_eq!(call_as(&f.sim, &other, "GET", &f.id, None).await.0, 200);
    f.sim.reset_quota();
    assert_eq!(f.get("Sheet1!A1").await.0, 200);
    assert_eq!(f.sim.api_calls(), 6);
}

#[tokio::test]
async fn ranges_with_quoted_sheet_names() {
    let f = fixture(GoogleSimConfig::default(), &["My Sheet", "It's"]).await;
    let (status, body) = f
        .append("'My Sheet'!A1:C1", "RAW", json!([["a", "b", "c"]]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["updates"]["updatedRange"], "'My Sheet'!A1:C1");
    let (_, body) = f
        .append("'My Sheet'!A1:C1", "RAW", json!([["d", "e", "f"]]))
        .await;
    assert_eq!(body["tableRange"], "'My Sheet'!A1:C1");
    assert_eq!(body["updates"]["updatedRange"], "'My Sheet'!A2:C2");

    let (status, body) = f.get("'My Sheet'").await;
    assert_eq!(status, 200);
    assert_eq!(body["range"], "'My Sheet'!A1:Z1000");
    assert_eq!(body["values"], json!([["a", "b", "c"], ["d", "e", "f"]]));

    let (status, body) = f
        .update("'It''s'!B2", "USER_ENTERED", json!([["=A1"]]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["updatedRange"], "'It''s'!B2");
    assert_eq!(f.sim.cell(&f.id, "It's", 1, 1), Cell::Formula("=A1".into()));
    // A range the client did not encode at all (a raw colon in the path).
    let (status, body) = f.call("GET", "/values/%27My%20Sheet%27!A2:C2", None).await;
    assert_eq!((status, &body["values"]), (200, &json!([["d", "e", "f"]])));

    for bad in ["Nope!A1", "'My Sheet!A1", "Sheet1"] {
        let (status, body) = f.get(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Unable to parse range"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn faults_fire_once_on_their_route() {
    let f = fixture(GoogleSimConfig::default(), &[]).await;
    f.sim.inject(GoogleRoute::ValuesAppend, Fault::Throttle);
    f.sim.inject(
        GoogleRoute::SpreadsheetGet,
        Fault::Status(503, "backend down".into()),
    );
    // The get is not the append's fault.
    assert_eq!(f.get("Sheet1!A1").await.0, 200);
    let (status, body) = f.append("Sheet1!A1", "RAW", json!([["x"]])).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(
        f.sim.rows(&f.id, "Sheet1").is_empty(),
        "a throttled append wrote nothing"
    );
    assert_eq!(f.append("Sheet1!A1", "RAW", json!([["x"]])).await.0, 200);
    assert_eq!(f.call("GET", "", None).await.0, 503);
    assert_eq!(f.call("GET", "", None).await.0, 200);
    f.sim.inject(GoogleRoute::Any, Fault::Garbage);
    let (status, body) = f.update("Sheet1!A1", "RAW", json!([["y"]])).await;
    assert_eq!((status, body), (200, Value::Null));
    assert_eq!(f.sim.cell(&f.id, "Sheet1", 0, 0), text("x"));
    assert_eq!(f.sim.faults().pending(), 0);
    let statuses: Vec<Option<u16>> = f.sim.api_requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            Some(200),
            Some(429),
            Some(200),
            Some(503),
            Some(200),
            Some(200)
        ]
    );
}

#[tokio::test]
async fn insert_rows_pushes_later_rows_down() {
    let f = fixture(GoogleSimConfig::default(), &[]).await;
    f.sim.seed_rows(
        &f.id,
        "Sheet1",
        vec![
            vec![text("h1"), text("h2")],
            vec![text("r1")],
            vec![],
            vec![Cell::Empty, Cell::Empty, text("notes")],
        ],
    );
    let tail = format!(
        "/values/{}:append?valueInputOption=RAW&insertDataOption=INSERT_ROWS",
        enc("Sheet1!A:B")
    );
    let (status, body) = f
        .call("POST", &tail, Some(json!({"values": [["r2", "x"]]})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tableRange"], "Sheet1!A1:B2");
    assert_eq!(body["updates"]["updatedRange"], "Sheet1!A3:B3");
    let rows = f.sim.rows(&f.id, "Sheet1");
    assert_eq!(rows[2], vec![text("r2"), text("x")]);
    assert_eq!(rows[4], vec![Cell::Empty, Cell::Empty, text("notes")]);
}

#[tokio::test]
async fn many_rows_in_one_append_and_many_ranges_in_one_batch_update() {
    let f = fixture(GoogleSimConfig::default(), &["Leads"]).await;
    let rows = json!([["a", "lead-1"], ["b", "lead-2"], ["c", "lead-3"]]);
    let (status, body) = f.append("Leads!A:B", "RAW", rows).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["updates"]["updatedRange"], "Leads!A1:B3");
    assert_eq!(body["updates"]["updatedRows"], 3);

    let batch = json!({"valueInputOption": "RAW", "data": [
        {"range": "Leads!A1:B1", "majorDimension": "ROWS", "values": [["a2", "lead-1"]]},
        {"range": "'Leads'!A3:B3", "values": [["=1+1", "lead-3"]]},
    ]});
    let (status, body) = f.call("POST", "/values:batchUpdate", Some(batch)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalUpdatedRows"], 2);
    assert_eq!(body["totalUpdatedCells"], 4);
    assert_eq!(body["totalUpdatedSheets"], 1);
    assert_eq!(body["responses"][0]["updatedRange"], "Leads!A1:B1");
    assert_eq!(body["responses"][1]["updatedRange"], "Leads!A3:B3");
    assert_eq!(f.sim.cell(&f.id, "Leads", 0, 0), text("a2"));
    assert_eq!(f.sim.cell(&f.id, "Leads", 2, 0), text("=1+1"), "RAW");
    assert_eq!(f.sim.cell(&f.id, "Leads", 1, 0), text("b"), "untouched");

    // One bad range: nothing written; no option: refused.
    let bad = json!({"valueInputOption": "RAW", "data": [
        {"range": "Leads!A2:B2", "values": [["changed", "lead-2"]]},
        {"range": "Nowhere!A1", "values": [["x"]]},
    ]});
    let (status, _) = f.call("POST", "/values:batchUpdate", Some(bad)).await;
    assert_eq!(status, 400);
    assert_eq!(
        f.sim.cell(&f.id, "Leads", 1, 0),
        text("b"),
        "all or nothing"
    );
    let (status, _) = f
        .call(
            "POST",
            "/values:batchUpdate",
            Some(json!({"data": [{"range": "Leads!A1", "values": [["x"]]}]})),
        )
        .await;
    assert_eq!(status, 400);

    // Applied, then the answer lost.
    f.sim.inject(
        GoogleRoute::ValuesBatchUpdate,
        Fault::LoseAnswer(Lost::Status(502, "bad gateway".into())),
    );
    let again = json!({"valueInputOption": "RAW", "data": [
        {"range": "Leads!A2:B2", "values": [["b2", "lead-2"]]},
    ]});
    let (status, _) = f.call("POST", "/values:batchUpdate", Some(again)).await;
    assert_eq!(status, 502);
    assert_eq!(f.sim.cell(&f.id, "Leads", 1, 0), text("b2"));
}
