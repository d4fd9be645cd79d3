//! The spreadsheet store and the Sheets API v4 subset: `spreadsheets.get`,
//! `values.get`, `values.append`, `values.update`, with bearer auth,
//! per-user quota and sharing. Also the simulator-only `GET /_sim/state`.

use std::collections::{BTreeSet, HashMap};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::a1::{self, A1Range};
use super::{
    google_error, json_response, oauth, quota_exceeded, AuthedUser, Ctx, Endpoint, Shared,
    SIM_STATE_PATH,
};
use crate::sim::server::Reject;

/// Rows and columns of a new tab, as Google creates them.
const DEFAULT_ROWS: usize = 1000;
const DEFAULT_COLS: usize = 26;
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// One stored cell.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Cell {
    /// A string value (RAW strings, and USER_ENTERED text).
    Text(String),
    Number(f64),
    Bool(bool),
    /// A formula, with its leading `=` (only from `USER_ENTERED`).
    Formula(String),
    #[default]
    Empty,
}

impl Cell {
    pub fn is_empty(&self) -> bool {
        matches!(self, Cell::Empty)
    }

    /// The stored value as `/_sim/state` shows it: strings, numbers, booleans,
    /// `{"formula": "=..."}`, `null`.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Text(text) => json!(text),
            Cell::Number(n) => number_json(*n),
            Cell::Bool(b) => json!(b),
            Cell::Formula(f) => json!({ "formula": f }),
            Cell::Empty => Value::Null,
        }
    }

    /// As `values.get` renders it (formulas are not evaluated: with
    /// `FORMATTED_VALUE`/`UNFORMATTED_VALUE` a formula cell shows its text).
    fn render(&self, option: Render) -> Value {
        match (self, option) {
            (Cell::Text(text), _) | (Cell::Formula(text), _) => json!(text),
            (Cell::Number(n), Render::Formatted) => json!(format_number(*n)),
            (Cell::Number(n), _) => number_json(*n),
            (Cell::Bool(b), Render::Formatted) => json!(if *b { "TRUE" } else { "FALSE" }),
            (Cell::Bool(b), _) => json!(b),
            (Cell::Empty, _) => json!(""),
        }
    }
}

/// Whole numbers as JSON integers (`82`, not `82.0`), as Google prints them.
fn number_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    Formatted,
    Unformatted,
    Formula,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Raw,
    UserEntered,
}

// ---------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct Store {
    spreadsheets: Vec<Spreadsheet>,
}

pub(super) struct Spreadsheet {
    id: String,
    title: String,
    owner: String,
    editors: BTreeSet<String>,
    sheets: Vec<Sheet>,
}

pub(super) struct Sheet {
    sheet_id: i64,
    title: String,
    rows: Vec<Vec<Cell>>,
    row_count: usize,
    col_count: usize,
}

impl Store {
    pub(super) fn add(&mut self, owner: &str, title: &str, sheets: &[&str]) -> String {
        let mut rng = rand::thread_rng();
        let id: String = (0..44)
            .map(|_| char::from(ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())]))
            .collect();
        self.add_with_id(owner, &id, title, sheets)
    }

    /// A spreadsheet with a chosen id (the demo names it in advance).
    pub(super) fn add_with_id(
        &mut self,
        owner: &str,
        id: &str,
        title: &str,
        sheets: &[&str],
    ) -> String {
        let id = id.to_owned();
        let mut spreadsheet = Spreadsheet {
            id: id.clone(),
            title: title.to_owned(),
            owner: owner.to_ascii_lowercase(),
            editors: BTreeSet::new(),
            sheets: Vec::new(),
        };
        let titles: &[&str] = if sheets.is_empty() {
            &["Sheet1"]
        } else {
            sheets
        };
        for title in titles {
            spreadsheet.add_sheet(title);
        }
        self.spreadsheets.push(spreadsheet);
        id
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Spreadsheet> {
        self.spreadsheets.iter_mut().find(|s| s.id == id)
    }

    pub(super) fn get_or_panic(&mut self, id: &str) -> &mut Spreadsheet {
        self.get_mut(id)
            .unwrap_or_else(|| panic!("unknown spreadsheet {id:?}"))
    }
}

impl Spreadsheet {
    pub(super) fn share(&mut self, email: &str) {
        self.editors.insert(email.to_ascii_lowercase());
    }

    fn can_edit(&self, user: &str) -> bool {
        self.owner == user || self.editors.contains(user)
    }

    pub(super) fn add_sheet(&mut self, title: &str) -> i64 {
        assert!(
            self.sheet_index(title).is_none(),
            "a tab named {title:?} exists"
        );
        let sheet_id = if self.sheets.is_empty() {
            0
        } else {
            rand::thread_rng().gen_range(1..2_000_000_000)
        };
        self.sheets.push(Sheet {
            sheet_id,
            title: title.to_owned(),
            rows: Vec::new(),
            row_count: DEFAULT_ROWS,
            col_count: DEFAULT_COLS,
        });
        sheet_id
    }

    fn sheet_index(&self, title: &str) -> Option<usize> {
        self.sheets.iter().position(|s| s.title == title)
    }

    pub(super) fn sheet_or_panic(&mut self, title: &str) -> &mut Sheet {
        let idx = self
            .sheet_index(title)
            .unwrap_or_else(|| panic!("unknown tab {title:?} in {:?}", self.id));
        &mut self.sheets[idx]
    }

    pub(super) fn state_json(&self) -> Value {
        json!({
            "spreadsheetId": self.id,
            "title": self.title,
            "owner": self.owner,
            "editors": self.editors,
            "sheets": self.sheets.iter().map(|sheet| json!({
                "sheetId": sheet.sheet_id,
                "title": sheet.title,
                "rows": sheet.trimmed_rows().iter()
                    .map(|row| row.iter().map(Cell::to_json).collect::<Vec<_>>())
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn resource(&self) -> Value {
        json!({
            "spreadsheetId": self.id,
            "properties": {"title": self.title, "locale": "en_US", "timeZone": "Etc/GMT"},
            "sheets": self.sheets.iter().enumerate().map(|(index, sheet)| json!({
                "properties": {
                    "sheetId": sheet.sheet_id,
                    "title": sheet.title,
                    "index": index,
                    "sheetType": "GRID",
                    "gridProperties": {"rowCount": sheet.row_count, "columnCount": sheet.col_count},
                }
            })).collect::<Vec<_>>(),
            "spreadsheetUrl": format!("https://docs.google.com/spreadsheets/d/{}/edit", self.id),
        })
    }
}

impl Sheet {
    pub(super) fn set_rows(&mut self, rows: Vec<Vec<Cell>>) {
        self.rows = rows;
        self.row_count = self.row_count.max(self.rows.len());
        let width = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        self.col_count = self.col_count.max(width);
    }

    pub(super) fn cell(&self, row: usize, col: usize) -> Cell {
        self.rows
            .get(row)
            .and_then(|r| r.get(col))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn trimmed_rows(&self) -> Vec<Vec<Cell>> {
        let mut rows: Vec<Vec<Cell>> = self
            .rows
            .iter()
            .map(|row| {
                let len = row.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
                row[..len].to_vec()
            })
            .collect();
        while rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        rows
    }

    fn set(&mut self, row: usize, col: usize, cell: Cell) {
        if self.rows.len() <= row {
            self.rows.resize_with(row + 1, Vec::new);
        }
        let cells = &mut self.rows[row];
        if cells.len() <= col {
            cells.resize_with(col + 1, Cell::default);
        }
        cells[col] = cell;
        self.row_count = self.row_count.max(row + 1);
        self.col_count = self.col_count.max(col + 1);
    }

    /// Bounded version of a rectangle (inclusive ends) clipped to the grid.
    fn bounds(&self, rect: a1::Rect) -> (usize, usize, usize, usize) {
        let r1 = rect.r1.unwrap_or(self.row_count.saturating_sub(1));
        let c1 = rect.c1.unwrap_or(self.col_count.saturating_sub(1));
        (rect.r0, rect.c0, r1, c1)
    }
}

// ---------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------

type Answer = Result<Response, Reject>;

pub(super) fn handle(shared: &Shared, endpoint: &Endpoint, ctx: &Ctx) -> Response {
    let user = match authenticate(shared, ctx) {
        Ok(user) => user,
        Err(reject) => return reject.into_response(),
    };
    let mut response = if take_quota(shared, &user) {
        let mut store = shared.store();
        match serve(&mut store, endpoint, ctx, &user) {
            Ok(response) => response,
            Err(reject) => reject.into_response(),
        }
    } else {
        quota_exceeded()
    };
    response.extensions_mut().insert(AuthedUser(user));
    response
}

fn authenticate(shared: &Shared, ctx: &Ctx) -> Result<String, Reject> {
    ctx.authorization
        .as_deref()
        .and_then(oauth::bearer)
        .and_then(|token| shared.auth().session_user(token))
        .ok_or_else(|| {
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            )
            .into()
        })
}

/// Count one request against `user`'s last 60 s; false when over quota
/// (refused requests are not counted).
fn take_quota(shared: &Shared, user: &str) -> bool {
    shared.quota.take(&user.to_owned()).is_ok()
}

fn serve(store: &mut Store, endpoint: &Endpoint, ctx: &Ctx, user: &str) -> Answer {
    let (Endpoint::SpreadsheetGet { id }
    | Endpoint::ValuesGet { id, .. }
    | Endpoint::ValuesAppend { id, .. }
    | Endpoint::ValuesUpdate { id, .. }
    | Endpoint::ValuesBatchUpdate { id }) = endpoint
    else {
        return Err(not_found().into());
    };
    let spreadsheet = store.get_mut(id).ok_or_else(|| Reject::from(not_found()))?;
    if !spreadsheet.can_edit(user) {
        return Err(google_error(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        )
        .into());
    }
    match endpoint {
        Endpoint::ValuesGet { range, .. } => values_get(spreadsheet, range, ctx),
        Endpoint::ValuesAppend { range, .. } => values_append(spreadsheet, range, ctx),
        Endpoint::ValuesUpdate { range, .. } => values_update(spreadsheet, range, ctx),
        Endpoint::ValuesBatchUpdate { .. } => values_batch_update(spreadsheet, ctx),
        _ => Ok(json_response(StatusCode::OK, &spreadsheet.resource())),
    }
}

fn not_found() -> Response {
    google_error(404, "NOT_FOUND", "Requested entity was not found.")
}

fn bad_request(message: impl AsRef<str>) -> Reject {
    google_error(400, "INVALID_ARGUMENT", message.as_ref()).into()
}

/// The tab index and parsed range, or 400 `Unable to parse range`.
fn resolve(spreadsheet: &Spreadsheet, range: &str) -> Result<(usize, A1Range), Reject> {
    let unable = || bad_request(format!("Unable to parse range: {range}"));
    let parsed = a1::parse(range).ok_or_else(unable)?;
    let idx = match &parsed.sheet {
        None => 0,
        Some(title) => spreadsheet.sheet_index(title).ok_or_else(unable)?,
    };
    Ok((idx, parsed))
}

fn values_get(spreadsheet: &Spreadsheet, range: &str, ctx: &Ctx) -> Answer {
    let (idx, parsed) = resolve(spreadsheet, range)?;
    let sheet = &spreadsheet.sheets[idx];
    let render = match ctx.param("valueRenderOption") {
        "" | "FORMATTED_VALUE" => Render::Formatted,
        "UNFORMATTED_VALUE" => Render::Unformatted,
        "FORMULA" => Render::Formula,
        other => return Err(bad_request(format!("Invalid value at 'value_render_option' (type.googleapis.com/google.apps.sheets.v4.ValueRenderOption), \"{other}\""))),
    };
    let columns = match ctx.param("majorDimension") {
        "" | "ROWS" => false,
        "COLUMNS" => true,
        other => return Err(bad_request(format!("Invalid value at 'major_dimension' (type.googleapis.com/google.apps.sheets.v4.Dimension), \"{other}\""))),
    };
    let (r0, c0, r1, c1) = sheet.bounds(parsed.rect);
    if r0 >= sheet.row_count || c0 >= sheet.col_count {
        return Err(bad_request(format!(
            "Range ({range}) exceeds grid limits. Max rows: {}, max columns: {}",
            sheet.row_count, sheet.col_count
        )));
    }
    let (r1, c1) = (r1.min(sheet.row_count - 1), c1.min(sheet.col_count - 1));
    let grid: Vec<Vec<Cell>> = if columns {
        (c0..=c1)
            .map(|c| {
                (r0..=r1.min(sheet.rows.len().max(r0)))
                    .map(|r| sheet.cell(r, c))
                    .collect()
            })
            .collect()
    } else {
        (r0..=r1.min(sheet.rows.len().max(r0)))
            .map(|r| (c0..=c1).map(|c| sheet.cell(r, c)).collect())
            .collect()
    };
    let mut values: Vec<Value> = grid
        .iter()
        .map(|line| {
            let len = line
                .iter()
                .rposition(|c| !c.is_empty())
                .map_or(0, |i| i + 1);
            Value::Array(line[..len].iter().map(|c| c.render(render)).collect())
        })
        .collect();
    while values
        .last()
        .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
    {
        values.pop();
    }
    let mut body = json!({
        "range": a1::format(&sheet.title, r0, c0, r1, c1),
        "majorDimension": if columns { "COLUMNS" } else { "ROWS" },
    });
    if !values.is_empty() {
        body["values"] = Value::Array(values);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// The `values` of a write body (rows), checked: `range` (when present)
/// must name the URL's range, `majorDimension` is `ROWS` or `COLUMNS`.
fn write_rows(
    spreadsheet: &Spreadsheet,
    ctx: &Ctx,
    url_range: &A1Range,
    url_idx: usize,
) -> Result<(Input, Vec<Vec<Value>>), Reject> {
    let input = match ctx.param("valueInputOption") {
        "RAW" => Input::Raw,
        "USER_ENTERED" => Input::UserEntered,
        "" => return Err(bad_request("'valueInputOption' is required but not specified")),
        other => return Err(bad_request(format!("Invalid value at 'value_input_option' (type.googleapis.com/google.apps.sheets.v4.ValueInputOption), \"{other}\""))),
    };
    let body: Map<String, Value> = match ctx.body.trim() {
        "" => Map::new(),
        text => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(bad_request("Invalid JSON payload received.")),
        },
    };
    if let Some(range) = body.get("range").and_then(Value::as_str) {
        let same = resolve(spreadsheet, range)
            .is_ok_and(|(idx, parsed)| idx == url_idx && parsed.rect == url_range.rect);
        if !same {
            return Err(bad_request(format!(
                "Requested range [{range}] does not match the range in the request URL"
            )));
        }
    }
    let mut rows: Vec<Vec<Value>> = Vec::new();
    match body.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(lines)) => {
            for (i, line) in lines.iter().enumerate() {
                match line {
                    Value::Array(cells) => rows.push(cells.clone()),
                    _ => return Err(bad_request(format!("Invalid values[{i}]: not a list"))),
                }
            }
        }
        Some(_) => {
            return Err(bad_request(
                "Invalid JSON payload received. 'values' is not a list.",
            ))
        }
    }
    match body.get("majorDimension").and_then(Value::as_str) {
        None | Some("ROWS") => {}
        Some("COLUMNS") => rows = transpose(rows),
        Some(other) => {
            return Err(bad_request(format!(
                "Invalid value at 'data.major_dimension', \"{other}\""
            )))
        }
    }
    Ok((input, rows))
}

fn transpose(columns: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let height = columns.iter().map(Vec::len).max().unwrap_or(0);
    (0..height)
        .map(|r| {
            columns
                .iter()
                .map(|col| col.get(r).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect()
}

/// The cell a JSON value becomes (`None` = leave the cell as it is).
fn to_cell(value: &Value, input: Input, at: (usize, usize)) -> Result<Option<Cell>, Reject> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => Cell::Bool(*b),
        Value::Number(n) => Cell::Number(n.as_f64().unwrap_or_default()),
        Value::String(s) if s.is_empty() => Cell::Empty,
        Value::String(s) if input == Input::Raw => Cell::Text(s.clone()),
        Value::String(s) => user_entered(s),
        other => {
            let kind = if other.is_array() {
                "list_value"
            } else {
                "struct_value"
            };
            return Err(bad_request(format!(
                "Invalid values[{}][{}]: {kind} {{{other}}}",
                at.0, at.1
            )));
        }
    }))
}

/// What typing `text` into a cell stores.
fn user_entered(text: &str) -> Cell {
    if let Some(quoted) = text.strip_prefix('\'') {
        return Cell::Text(quoted.to_owned());
    }
    if text.len() > 1 && text.starts_with('=') {
        return Cell::Formula(text.to_owned());
    }
    match text.to_ascii_uppercase().as_str() {
        "TRUE" => return Cell::Bool(true),
        "FALSE" => return Cell::Bool(false),
        _ => {}
    }
    let numeric = text.trim();
    let looks_numeric = numeric
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && numeric.bytes().any(|b| b.is_ascii_digit());
    match numeric.parse::<f64>() {
        Ok(n) if looks_numeric && n.is_finite() => Cell::Number(n),
        _ => Cell::Text(text.to_owned()),
    }
}

/// The cells JSON rows become (`None` = leave the cell as it is).
type Converted = Vec<Vec<Option<Cell>>>;

fn convert(rows: &[Vec<Value>], input: Input) -> Result<Converted, Reject> {
    rows.iter()
        .enumerate()
        .map(|(i, line)| {
            line.iter()
                .enumerate()
                .map(|(j, v)| to_cell(v, input, (i, j)))
                .collect()
        })
        .collect()
}

/// Write `cells` at `(r0, c0)`; returns `(rows, columns, cells)` written.
fn write(sheet: &mut Sheet, converted: Converted, r0: usize, c0: usize) -> (usize, usize, usize) {
    let (height, mut cells, mut width) = (converted.len(), 0, 0);
    for (i, line) in converted.into_iter().enumerate() {
        width = width.max(line.len());
        for (j, cell) in line.into_iter().enumerate() {
            if let Some(cell) = cell {
                sheet.set(r0 + i, c0 + j, cell);
                cells += 1;
            }
        }
    }
    (height, width, cells)
}

fn updates(id: &str, sheet: &Sheet, r0: usize, c0: usize, written: (usize, usize, usize)) -> Value {
    let (rows, cols, cells) = written;
    let range = a1::format(
        &sheet.title,
        r0,
        c0,
        r0 + rows.max(1) - 1,
        c0 + cols.max(1) - 1,
    );
    json!({
        "spreadsheetId": id,
        "updatedRange": range,
        "updatedRows": rows,
        "updatedColumns": cols,
        "updatedCells": cells,
    })
}

fn values_update(spreadsheet: &mut Spreadsheet, range: &str, ctx: &Ctx) -> Answer {
    let body = update_values(spreadsheet, range, ctx)?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `values:batchUpdate`: each `data` entry written as `values.update` would write it, in order,
/// all or nothing; `responses` holds each one's answer. `valueInputOption` is in the body.
fn values_batch_update(spreadsheet: &mut Spreadsheet, ctx: &Ctx) -> Answer {
    let body: Map<String, Value> = match serde_json::from_str(ctx.body.trim()) {
        Ok(Value::Object(map)) => map,
        _ => return Err(bad_request("Invalid JSON payload received.")),
    };
    let input = body
        .get("valueInputOption")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(Value::Array(data)) = body.get("data") else {
        return Err(bad_request("'data' is required but not specified"));
    };
    // Checked and applied entry by entry; the sheet is put back as it was when one fails.
    let before: Vec<Vec<Vec<Cell>>> = spreadsheet.sheets.iter().map(|s| s.rows.clone()).collect();
    let mut responses = Vec::new();
    for entry in data {
        let range = entry
            .get("range")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut query = HashMap::new();
        query.insert("valueInputOption".to_owned(), input.clone());
        let one = Ctx {
            query,
            authorization: None,
            body: entry.to_string(),
        };
        match update_values(spreadsheet, &range, &one) {
            Ok(answer) => responses.push(answer),
            Err(reject) => {
                for (sheet, rows) in spreadsheet.sheets.iter_mut().zip(before) {
                    sheet.rows = rows;
                }
                return Err(reject);
            }
        }
    }
    let total = |field: &str| -> u64 {
        responses
            .iter()
            .filter_map(|r| r.get(field).and_then(Value::as_u64))
            .sum()
    };
    let sheets: BTreeSet<String> = responses
        .iter()
        .filter_map(|r| r["updatedRange"].as_str())
        .map(|r| r.rsplit_once('!').map_or(r, |(title, _)| title).to_owned())
        .collect();
    let answer = json!({
        "spreadsheetId": spreadsheet.id,
        "totalUpdatedRows": total("updatedRows"),
        "totalUpdatedColumns": total("updatedColumns"),
        "totalUpdatedCells": total("updatedCells"),
        "totalUpdatedSheets": sheets.len(),
        "responses": responses,
    });
    Ok(json_response(StatusCode::OK, &answer))
}

fn update_values(spreadsheet: &mut Spreadsheet, range: &str, ctx: &Ctx) -> Result<Value, Reject> {
    let (idx, parsed) = resolve(spreadsheet, range)?;
    let (input, rows) = write_rows(spreadsheet, ctx, &parsed, idx)?;
    let rect = parsed.rect;
    let shown = a1::format(
        &spreadsheet.sheets[idx].title,
        rect.r0,
        rect.c0,
        rect.r1.unwrap_or(rect.r0),
        rect.c1.unwrap_or(rect.c0),
    );
    if let Some(r1) = rect.r1 {
        if rows.len() > r1 - rect.r0 + 1 {
            return Err(bad_request(format!(
                "Requested writing within range [{shown}], but tried writing to row [{}]",
                r1 + 2
            )));
        }
    }
    if let Some(c1) = rect.c1 {
        if rows.iter().any(|line| line.len() > c1 - rect.c0 + 1) {
            return Err(bad_request(format!(
                "Requested writing within range [{shown}], but tried writing to column [{}]",
                a1::col_name(c1 + 1)
            )));
        }
    }
    let id = spreadsheet.id.clone();
    let sheet = &mut spreadsheet.sheets[idx];
    let written = write(sheet, convert(&rows, input)?, rect.r0, rect.c0);
    let mut body = updates(&id, sheet, rect.r0, rect.c0, written);
    if ctx.param("includeValuesInResponse") == "true" {
        body["updatedData"] =
            json!({"range": body["updatedRange"], "majorDimension": "ROWS", "values": rows});
    }
    Ok(body)
}

fn values_append(spreadsheet: &mut Spreadsheet, range: &str, ctx: &Ctx) -> Answer {
    let (idx, parsed) = resolve(spreadsheet, range)?;
    let (input, rows) = write_rows(spreadsheet, ctx, &parsed, idx)?;
    let insert = match ctx.param("insertDataOption") {
        "" | "OVERWRITE" => false,
        "INSERT_ROWS" => true,
        other => return Err(bad_request(format!("Invalid value at 'insert_data_option' (type.googleapis.com/google.apps.sheets.v4.InsertDataOption), \"{other}\""))),
    };
    let converted = convert(&rows, input)?;
    let id = spreadsheet.id.clone();
    let sheet = &mut spreadsheet.sheets[idx];
    let (r0, c0, _, c1) = sheet.bounds(parsed.rect);
    // The table: the non-empty rows at or below the range's top, within its columns.
    let occupied = |row: &Vec<Cell>| {
        row.iter()
            .enumerate()
            .filter(|(c, cell)| *c >= c0 && *c <= c1 && !cell.is_empty())
            .map(|(c, _)| c)
            .max()
    };
    let mut table: Option<(usize, usize, usize)> = None; // first row, last row, last col
    for (r, row) in sheet.rows.iter().enumerate().skip(r0) {
        if let Some(last_col) = occupied(row) {
            table = Some(match table {
                None => (r, r, last_col),
                Some((first, _, col)) => (first, r, col.max(last_col)),
            });
        }
    }
    let target = table.map_or(r0, |(_, last, _)| last + 1);
    if insert && !rows.is_empty() && target < sheet.rows.len() {
        let blank = std::iter::repeat_with(Vec::new).take(rows.len());
        sheet.rows.splice(target..target, blank);
        sheet.row_count += rows.len();
    } else if insert {
        sheet.row_count += rows.len();
    }
    let written = write(sheet, converted, target, c0);
    let mut updates = updates(&id, sheet, target, c0, written);
    if ctx.param("includeValuesInResponse") == "true" {
        updates["updatedData"] =
            json!({"range": updates["updatedRange"], "majorDimension": "ROWS", "values": rows});
    }
    let mut body = json!({"spreadsheetId": id, "updates": updates});
    if let Some((first, last, last_col)) = table {
        body["tableRange"] = json!(a1::format(&sheet.title, first, c0, last, last_col));
    }
    Ok(json_response(StatusCode::OK, &body))
}

// ---------------------------------------------------------------------------
// GET /_sim/state
// ---------------------------------------------------------------------------

pub(super) fn sim_state(
    shared: &Shared,
    path: &str,
    query: &std::collections::HashMap<String, String>,
) -> Response {
    if path != SIM_STATE_PATH {
        return not_found();
    }
    let store = shared.store();
    match query.get("spreadsheet") {
        Some(id) => match store.spreadsheets.iter().find(|s| &s.id == id) {
            Some(spreadsheet) => json_response(StatusCode::OK, &spreadsheet.state_json()),
            None => not_found(),
        },
        None => json_response(
            StatusCode::OK,
            &json!({"spreadsheets": store.spreadsheets.iter().map(Spreadsheet::state_json).collect::<Vec<_>>()}),
        ),
    }
}
