//! Lead conversion, which Salesforce offers through SOAP only (`convertLead()` of the partner
//! API; REST has no standard action for it). One envelope out, one `result` back. Everything we
//! put in the envelope is escaped; the session id is the OAuth access token, so the envelope is
//! never logged.

use std::collections::BTreeMap;

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::api::{self, ApiError};
use crate::error::ProviderError;
use crate::registry::Provider;

/// What to convert, and into what.
pub(super) struct Conversion<'a> {
    pub lead_id: &'a str,
    pub converted_status: &'a str,
    /// The new opportunity's name; `None`: no opportunity.
    pub opportunity_name: Option<&'a str>,
}

/// The records a conversion made (or reused).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Converted {
    pub contact_id: String,
    pub account_id: Option<String>,
    pub opportunity_id: Option<String>,
}

/// The `convertLead` envelope. Its text holds the access token: send it, never print it.
pub(super) fn convert_envelope(session_id: &str, conversion: &Conversion<'_>) -> String {
    let mut fields = vec![
        ("convertedStatus", conversion.converted_status.to_string()),
        ("leadId", conversion.lead_id.to_string()),
        (
            "doNotCreateOpportunity",
            conversion.opportunity_name.is_none().to_string(),
        ),
        ("sendNotificationEmail", "false".to_string()),
    ];
    if let Some(name) = conversion.opportunity_name {
        fields.push(("opportunityName", name.to_string()));
    }
    let body: String = fields
        .iter()
        .map(|(name, value)| format!("<urn:{name}>{}</urn:{name}>", escape(value.as_str())))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:urn=\"urn:partner.soap.sforce.com\">\
         <soapenv:Header><urn:SessionHeader><urn:sessionId>{}</urn:sessionId></urn:SessionHeader></soapenv:Header>\
         <soapenv:Body><urn:convertLead><urn:leadConverts>{body}</urn:leadConverts></urn:convertLead></soapenv:Body>\
         </soapenv:Envelope>",
        escape(session_id)
    )
}

/// Leaf texts by their path of local names (`Body/convertLeadResponse/result/contactId`),
/// first occurrence only.
fn leaves(xml: &[u8]) -> Result<BTreeMap<String, String>, ProviderError> {
    let garbage = |detail: &str| ProviderError::Garbage {
        provider: Provider::Salesforce,
        status: 0,
        detail: detail.into(),
    };
    let text = std::str::from_utf8(xml).map_err(|_| garbage("the SOAP answer is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut found = BTreeMap::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                path.push(name);
                current.clear();
            }
            Ok(Event::Text(t)) => {
                current.push_str(&t.decode().map_err(|_| garbage("undecodable text"))?);
            }
            Ok(Event::GeneralRef(r)) => match r.as_ref() {
                b"amp" => current.push('&'),
                b"lt" => current.push('<'),
                b"gt" => current.push('>'),
                b"quot" => current.push('"'),
                b"apos" => current.push('\''),
                _ => {}
            },
            Ok(Event::End(_)) => {
                let key = path.join("/");
                if !current.is_empty() {
                    found.entry(key).or_insert_with(|| current.clone());
                }
                current.clear();
                path.pop();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return Err(garbage("the SOAP answer is not well-formed XML")),
        }
    }
    Ok(found)
}

/// Reads `convertLead`'s answer: the new ids, a per-lead error, or a fault (an expired session
/// is `Unauthorized`, so the caller refreshes once and converts again).
pub(super) fn read_conversion(status: u16, body: &[u8]) -> Result<Converted, ProviderError> {
    let found = leaves(body).map_err(|e| match e {
        ProviderError::Garbage { detail, .. } => ProviderError::Garbage {
            provider: Provider::Salesforce,
            status,
            detail,
        },
        other => other,
    })?;
    let get = |suffix: &str| {
        found
            .iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| v.clone())
    };
    if let Some(fault) = get("Fault/faultcode") {
        // `sf:INVALID_SESSION_ID`: the code after the namespace prefix.
        let code = fault.rsplit(':').next().unwrap_or_default().to_string();
        return Err(api::failure(
            status,
            &[ApiError {
                code,
                message: get("Fault/faultstring").unwrap_or_default(),
                fields: Vec::new(),
                duplicate_result: None,
            }],
        ));
    }
    let Some(success) = get("result/success") else {
        // Neither a fault nor a result (an empty or foreign body, as a proxy's 500 page): the
        // conversion may have happened; unreadable, so transient (the retry reads the Lead).
        return Err(ProviderError::Garbage {
            provider: Provider::Salesforce,
            status,
            detail: "the conversion answer holds neither a result nor a fault".into(),
        });
    };
    if success != "true" {
        let code = get("result/errors/statusCode").unwrap_or_else(|| "CONVERSION_FAILED".into());
        return Err(api::failure(
            status.max(400),
            &[ApiError {
                code,
                message: get("result/errors/message").unwrap_or_default(),
                fields: Vec::new(),
                duplicate_result: None,
            }],
        ));
    }
    let contact_id = get("result/contactId").ok_or(ProviderError::Garbage {
        provider: Provider::Salesforce,
        status,
        detail: "the conversion answer names no contact".into(),
    })?;
    Ok(Converted {
        contact_id,
        account_id: get("result/accountId"),
        opportunity_id: get("result/opportunityId"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_escapes_what_a_lead_can_put_in_it() {
        let envelope = convert_envelope(
            "00D!token<&>",
            &Conversion {
                lead_id: "00Q5g000001abcDEAQ",
                converted_status: "Closed - Converted",
                opportunity_name: Some("Tom & Jerry <b> (LeadRelay)"),
            },
        );
        assert!(envelope.contains("<urn:sessionId>00D!token&lt;&amp;&gt;</urn:sessionId>"));
        assert!(envelope.contains(
            "<urn:opportunityName>Tom &amp; Jerry &lt;b&gt; (LeadRelay)</urn:opportunityName>"
        ));
        assert!(envelope.contains("<urn:doNotCreateOpportunity>false</urn:doNotCreateOpportunity>"));
        let parsed = leaves(envelope.as_bytes()).unwrap();
        assert_eq!(
            parsed["Envelope/Body/convertLead/leadConverts/opportunityName"],
            "Tom & Jerry <b> (LeadRelay)"
        );
    }

    #[test]
    fn a_successful_conversion_gives_its_ids() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com"><soapenv:Body><convertLeadResponse><result><accountId>001A</accountId><contactId>003C</contactId><leadId>00QL</leadId><opportunityId>006O</opportunityId><success>true</success></result></convertLeadResponse></soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(
            read_conversion(200, body.as_bytes()).unwrap(),
            Converted {
                contact_id: "003C".into(),
                account_id: Some("001A".into()),
                opportunity_id: Some("006O".into()),
            }
        );
    }

    #[test]
    fn an_answer_with_neither_result_nor_fault_is_transient() {
        for (status, body) in [(500, ""), (502, "<html>bad gateway</html>"), (200, "<a/>")] {
            let error = read_conversion(status, body.as_bytes()).unwrap_err();
            assert!(
                matches!(error, ProviderError::Garbage { .. }) && error.is_retryable(),
                "{status} {body}: {error:?}"
            );
        }
    }

    #[test]
    fn faults_and_failed_results_become_errors() {
        let fault = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        assert!(matches!(
            read_conversion(500, fault.as_bytes()),
            Err(ProviderError::Unauthorized { .. })
        ));
        let failed = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><convertLeadResponse><result><errors><message>bad status</message><statusCode>INVALID_STATUS</statusCode></errors><leadId>00QL</leadId><success>false</success></result></convertLeadResponse></soapenv:Body></soapenv:Envelope>"#;
        let error = read_conversion(200, failed.as_bytes()).unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("INVALID_STATUS"), "{error}");
        assert!(matches!(
            read_conversion(200, b"<oops"),
            Err(ProviderError::Garbage { .. })
        ));
    }
}
