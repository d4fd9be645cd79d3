//! The SOAP partner API's `convertLead` (`POST /services/Soap/u/NN.N`), with
//! a small namespace-tolerant XML reader.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::rest::Store;
use super::schema::is_converted_status;
use super::{set_limit_info, AuthedOrg, Host, SfError, Shared};

// ---------------------------------------------------------------------------
// XML
// ---------------------------------------------------------------------------

/// An element by local name (namespace prefix dropped), its children and text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
}

impl Element {
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name)
            .map(|c| c.text.trim().to_owned())
            .filter(|t| !t.is_empty())
    }
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_owned()
}

fn decode_entities(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').ok_or("unterminated entity")? + amp;
        let entity = &rest[amp + 1..semi];
        let ch = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or("bad character reference")?,
            e if e.starts_with('#') => e[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or("bad character reference")?,
            _ => return Err(format!("unknown entity &{entity};")),
        };
        out.push(ch);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse a document into its root element.
pub(crate) fn parse_xml(text: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                let decoded = decode_entities(rest)?;
                stack
                    .last_mut()
                    .ok_or("text outside the root element")?
                    .text
                    .push_str(&decoded);
            }
            break;
        };
        if lt > 0 {
            let chunk = &rest[..lt];
            match stack.last_mut() {
                Some(top) => top.text.push_str(&decode_entities(chunk)?),
                None if chunk.trim().is_empty() => {}
                None => return Err("text outside the root element".into()),
            }
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<?") {
            rest = &after[after.find("?>").ok_or("unterminated declaration")? + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->").ok_or("unterminated comment")? + 3..];
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("unterminated CDATA")?;
            stack
                .last_mut()
                .ok_or("CDATA outside the root element")?
                .text
                .push_str(&after[..end]);
            rest = &after[end + 3..];
        } else if rest.starts_with("<!") {
            rest = &rest[rest.find('>').ok_or("unterminated declaration")? + 1..];
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unterminated end tag")?;
            let name = local(after[..end].trim());
            let element = stack.pop().ok_or("end tag without start tag")?;
            if element.name != name {
                return Err(format!("</{name}> closes <{}>", element.name));
            }
            attach(&mut stack, &mut root, element)?;
            rest = &after[end + 1..];
        } else {
            let after = &rest[1..];
            let end = tag_end(after).ok_or("unterminated start tag")?;
            let inner = &after[..end];
            let self_closing = inner.ends_with('/');
            let inner = inner.trim_end_matches('/');
            let name = inner
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or_default();
            if name.is_empty() {
                return Err("empty tag name".into());
            }
            let element = Element {
                name: local(name),
                ..Element::default()
            };
            if self_closing {
                attach(&mut stack, &mut root, element)?;
            } else {
                stack.push(element);
            }
            rest = &after[end + 1..];
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

/// Index of the `>` ending a start tag, skipping quoted attribute values.
fn tag_end(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml;charset=UTF-8"),
        )],
        body,
    )
        .into_response()
}

/// HTTP 500 with a SOAP fault (`faultcode` e.g. `sf:INVALID_SESSION_ID`).
pub(crate) fn fault(code: &str, message: &str) -> Response {
    xml_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:sf=\"urn:fault.partner.soap.sforce.com\"><soapenv:Body><soapenv:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
            escape(code),
            escape(message)
        ),
    )
}

fn invalid_session_fault() -> Response {
    fault(
        "sf:INVALID_SESSION_ID",
        "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session",
    )
}

// ---------------------------------------------------------------------------
// convertLead
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct LeadConvert {
    lead_id: String,
    converted_status: String,
    opportunity_name: Option<String>,
    do_not_create_opportunity: bool,
    contact_id: Option<String>,
    account_id: Option<String>,
}

struct Converted {
    account_id: String,
    contact_id: String,
    opportunity_id: Option<String>,
}

/// `POST /services/Soap/u/NN.N`: only `convertLead`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(Host(host)): Extension<Host>,
    body: String,
) -> Response {
    let Ok(envelope) = parse_xml(&body) else {
        return fault("soapenv:Client", "Unable to parse the request body as XML");
    };
    let Some(soap_body) = envelope
        .child("Body")
        .filter(|_| envelope.name == "Envelope")
    else {
        return fault("soapenv:Client", "Expected a SOAP Envelope with a Body");
    };
    let session = envelope
        .child("Header")
        .and_then(|h| h.child("SessionHeader"))
        .and_then(|h| h.text_of("sessionId"))
        .unwrap_or_default();
    let Some((org, idx)) = shared.session_org(&session, &host) else {
        return invalid_session_fault();
    };
    let limit = shared.config.api_daily_limit;
    let mut store = shared.store();
    let used = store.orgs[idx].api_usage;
    if used + 1 > limit {
        drop(store);
        let mut response = fault(
            "sf:REQUEST_LIMIT_EXCEEDED",
            "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.",
        );
        set_limit_info(&mut response, used, limit);
        response.extensions_mut().insert(AuthedOrg(org));
        return response;
    }
    store.orgs[idx].api_usage = used + 1;

    let mut response = match soap_body.child("convertLead") {
        None => {
            let operation = soap_body.children.first().map_or("", |c| c.name.as_str());
            fault(
                "soapenv:Client",
                &format!(
                    "No operation available for request {{urn:partner.soap.sforce.com}}{operation}"
                ),
            )
        }
        Some(call) => {
            let mut results = String::new();
            for item in call.children_named("leadConverts") {
                let request = LeadConvert {
                    lead_id: item.text_of("leadId").unwrap_or_default(),
                    converted_status: item.text_of("convertedStatus").unwrap_or_default(),
                    opportunity_name: item.text_of("opportunityName"),
                    do_not_create_opportunity: item
                        .text_of("doNotCreateOpportunity")
                        .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                    contact_id: item.text_of("contactId"),
                    account_id: item.text_of("accountId"),
                };
                results.push_str(&match convert(&mut store, idx, &request) {
                    Ok(done) => success_xml(&request.lead_id, &done),
                    Err(error) => failure_xml(&request.lead_id, &error),
                });
            }
            xml_response(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns=\"urn:partner.soap.sforce.com\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><convertLeadResponse>{results}</convertLeadResponse></soapenv:Body></soapenv:Envelope>"
                ),
            )
        }
    };
    drop(store);
    set_limit_info(&mut response, used + 1, limit);
    response.extensions_mut().insert(AuthedOrg(org));
    response
}

fn success_xml(lead_id: &str, done: &Converted) -> String {
    let opportunity = match &done.opportunity_id {
        Some(id) => format!("<opportunityId>{}</opportunityId>", escape(id)),
        None => "<opportunityId xsi:nil=\"true\"/>".to_owned(),
    };
    format!(
        "<result><accountId>{}</accountId><contactId>{}</contactId><leadId>{}</leadId>{opportunity}<success>true</success></result>",
        escape(&done.account_id),
        escape(&done.contact_id),
        escape(lead_id)
    )
}

fn failure_xml(lead_id: &str, error: &SfError) -> String {
    let fields: String = if error.fields.is_empty() {
        "<fields/>".to_owned()
    } else {
        error
            .fields
            .iter()
            .map(|f| format!("<fields>{}</fields>", escape(f)))
            .collect()
    };
    format!(
        "<result><errors>{fields}<message>{}</message><statusCode>{}</statusCode></errors><leadId>{}</leadId><success>false</success></result>",
        escape(&error.message),
        escape(&error.code),
        escape(lead_id)
    )
}

fn cross_reference(what: &str, id: &str) -> SfError {
    SfError::bad(
        "INVALID_CROSS_REFERENCE_KEY",
        format!("invalid cross reference id: {what} {id}"),
    )
}

fn convert(store: &mut Store, idx: usize, request: &LeadConvert) -> Result<Converted, SfError> {
    let org = &store.orgs[idx];
    let lead = org
        .get("Lead", &request.lead_id)
        .cloned()
        .ok_or_else(|| cross_reference("leadId", &request.lead_id))?;
    if lead.get("IsConverted") == Some(&Value::Bool(true)) {
        return Err(SfError::bad(
            "CANNOT_UPDATE_CONVERTED_LEAD",
            "cannot reference converted lead",
        ));
    }
    let status_ok = org.schema.lead_status_rows().iter().any(|row| {
        row.get("ApiName").and_then(Value::as_str) == Some(request.converted_status.as_str())
            && is_converted_status(&request.converted_status)
    });
    if !status_ok {
        return Err(SfError::bad(
            "INVALID_STATUS",
            format!("invalid convertedStatus: {}", request.converted_status),
        ));
    }
    if let Some(contact_id) = &request.contact_id {
        if org.get("Contact", contact_id).is_none() {
            return Err(cross_reference("contactId", contact_id));
        }
        if request.account_id.is_none() {
            return Err(SfError::bad(
                "REQUIRED_FIELD_MISSING",
                "accountId must be specified when contactId is specified",
            )
            .with_fields(&["accountId"]));
        }
    }
    if let Some(account_id) = &request.account_id {
        if org.get("Account", account_id).is_none() {
            return Err(cross_reference("accountId", account_id));
        }
    }
    let schema_of = |name: &str| {
        org.schema
            .object(name)
            .cloned()
            .ok_or_else(|| SfError::bad("UNKNOWN_EXCEPTION", format!("no {name} object")))
    };
    let account_schema = schema_of("Account")?;
    let contact_schema = schema_of("Contact")?;
    let opportunity_schema = schema_of("Opportunity")?;
    let first_open_stage = org.schema.first_open_stage();
    let company = lead
        .get("Company")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let copy = |from: &Map<String, Value>, keys: &[&str]| -> Map<String, Value> {
        keys.iter()
            .filter_map(|k| {
                from.get(*k)
                    .filter(|v| !v.is_null())
                    .map(|v| ((*k).to_owned(), v.clone()))
            })
            .collect()
    };

    let account_id = match &request.account_id {
        Some(id) => id.clone(),
        None => {
            let mut fields = Map::new();
            fields.insert("Name".into(), Value::String(company.clone()));
            store.insert(idx, &account_schema, fields)
        }
    };
    let contact_id = match &request.contact_id {
        Some(id) => id.clone(),
        None => {
            let mut fields = copy(
                &lead,
                &[
                    "FirstName",
                    "LastName",
                    "Email",
                    "Phone",
                    "LeadSource",
                    "Description",
                ],
            );
            fields.insert("AccountId".into(), Value::String(account_id.clone()));
            store.insert(idx, &contact_schema, fields)
        }
    };
    let opportunity_id = if request.do_not_create_opportunity {
        None
    } else {
        let mut fields = copy(&lead, &["LeadSource"]);
        let name = request
            .opportunity_name
            .clone()
            .unwrap_or_else(|| format!("{company}-"));
        fields.insert("Name".into(), Value::String(name));
        if let Some(stage) = &first_open_stage {
            fields.insert("StageName".into(), Value::String(stage.clone()));
        }
        let close = chrono::Utc::now().date_naive() + chrono::Days::new(30);
        fields.insert(
            "CloseDate".into(),
            Value::String(close.format("%Y-%m-%d").to_string()),
        );
        fields.insert("AccountId".into(), Value::String(account_id.clone()));
        fields.insert("ContactId".into(), Value::String(contact_id.clone()));
        Some(store.insert(idx, &opportunity_schema, fields))
    };

    let org = &mut store.orgs[idx];
    if let Some(lead) = org.get_mut("Lead", &request.lead_id) {
        lead.insert("IsConverted".into(), Value::Bool(true));
        lead.insert(
            "Status".into(),
            Value::String(request.converted_status.clone()),
        );
        lead.insert(
            "ConvertedContactId".into(),
            Value::String(contact_id.clone()),
        );
        lead.insert(
            "ConvertedAccountId".into(),
            Value::String(account_id.clone()),
        );
        lead.insert(
            "ConvertedOpportunityId".into(),
            opportunity_id.clone().map_or(Value::Null, Value::String),
        );
    }
    if let Some(tasks) = org.records.get_mut("Task") {
        for task in tasks
            .iter_mut()
            .filter(|t| t.get("WhoId").and_then(Value::as_str) == Some(request.lead_id.as_str()))
        {
            task.insert("WhoId".into(), Value::String(contact_id.clone()));
            let what_empty = task
                .get("WhatId")
                .is_none_or(|w| w.is_null() || w.as_str() == Some(""));
            if let (true, Some(opportunity)) = (what_empty, &opportunity_id) {
                task.insert("WhatId".into(), Value::String(opportunity.clone()));
            }
        }
    }
    Ok(Converted {
        account_id,
        contact_id,
        opportunity_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixed_soap() {
        let doc = r#"<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <soapenv:Header><urn:SessionHeader><urn:sessionId>00D!AR&amp;x</urn:sessionId></urn:SessionHeader></soapenv:Header>
  <soapenv:Body><urn:convertLead><urn:leadConverts><urn:leadId>00Q1</urn:leadId><urn:opportunityName/></urn:leadConverts></urn:convertLead></soapenv:Body>
</soapenv:Envelope>"#;
        let root = parse_xml(doc).unwrap();
        assert_eq!(root.name, "Envelope");
        let session = root
            .child("Header")
            .and_then(|h| h.child("SessionHeader"))
            .and_then(|s| s.text_of("sessionId"));
        assert_eq!(session.as_deref(), Some("00D!AR&x"));
        let lc = root
            .child("Body")
            .and_then(|b| b.child("convertLead"))
            .and_then(|c| c.child("leadConverts"))
            .unwrap();
        assert_eq!(lc.text_of("leadId").as_deref(), Some("00Q1"));
        assert_eq!(lc.text_of("opportunityName"), None);
        assert!(parse_xml("<a><b></a>").is_err());
        assert!(parse_xml("<a>&bogus;</a>").is_err());
    }
}
