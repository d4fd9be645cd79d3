//! The SQS message the lead pipeline sends for each qualified lead, or each update of one.
//!
//! Version 1:
//!
//! ```json
//! {"version": 1, "tenant_id": "tenant-demo", "plan": "pro",
//!  "lead": {"id": "lead-0001", "name": "Fatima Al-Kuwari", "phone": "+974 5555 1234",
//!           "email": "Fatima@Example.qa", "source": "whatsapp", "score": 82,
//!           "stage": "qualified", "country": "QA", "locale": "ar-QA"},
//!  "summary": "Asked about the annual plan", "occurred_at": "2026-11-28T04:00:00Z"}
//! ```
//!
//! Required: `version`, `tenant_id`, `plan`, `lead.id`, `lead.stage`, `occurred_at`. Everything
//! else may be missing or `null`. Unknown fields are ignored, so the pipeline can add fields
//! before this relay reads them; a change that old readers must not misread takes a new
//! `version`, which this relay refuses until it knows it.
//!
//! The body is read into a JSON value and then field by field, rather than derived with serde,
//! so that every error names its field and none echoes a value: serde's messages quote the
//! offending value, and that value may be a phone number or an email.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::region::{country_code, parse_locale};
use super::{Lead, ValidatedLead};
use crate::identity::TenantId;
use crate::plan::Plan;
use crate::stage::LeadStage;

/// The message version this relay reads.
pub const MESSAGE_VERSION: u32 = 1;

const MAX_LEAD_ID_CHARS: usize = 128;
const MAX_SOURCE_CHARS: usize = 100;
const MAX_SCORE: u64 = 100;

/// A lead message, validated and normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadMessage {
    pub version: u32,
    pub tenant_id: TenantId,
    pub plan: Plan,
    pub lead: Lead,
    pub occurred_at: DateTime<Utc>,
}

/// Why a message was refused. Every case is permanent: the same body fails the same way on every
/// delivery. The text names the field and the problem, never a value, so it is safe to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, a required field missing, or a field of the wrong JSON type.
    #[error("malformed lead message: {0}")]
    Malformed(String),
    #[error("unsupported lead message version {0} (this relay reads version {MESSAGE_VERSION})")]
    UnsupportedVersion(u64),
    /// A field of the right type with a value the schema does not allow.
    #[error("invalid lead message: {field} {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Reads a message body: its `version` first, then the shape of that version.
pub fn parse_message(body: &str) -> Result<LeadMessage, MessageError> {
    let value: Value = serde_json::from_str(body).map_err(|e| {
        MessageError::Malformed(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(message) = value else {
        return Err(malformed("the body must be a JSON object"));
    };
    match message.get("version") {
        None | Some(Value::Null) => Err(malformed("version is missing")),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(1) => parse_v1(&message),
            Some(other) => Err(MessageError::UnsupportedVersion(other)),
            None => Err(malformed("version must be a non-negative integer")),
        },
        Some(_) => Err(malformed("version must be a non-negative integer")),
    }
}

fn parse_v1(message: &Map<String, Value>) -> Result<LeadMessage, MessageError> {
    let tenant_id =
        TenantId::parse(required_str(message, "tenant_id", "tenant_id")?).map_err(|_| {
            invalid(
                "tenant_id",
                "must be 1 to 128 letters, digits, '-', '_', '.' or ':'",
            )
        })?;
    let plan = required_str(message, "plan", "plan")?
        .parse::<Plan>()
        .map_err(|_| invalid("plan", "must be free, pro or business"))?;
    let occurred_at =
        DateTime::parse_from_rfc3339(required_str(message, "occurred_at", "occurred_at")?)
            .map_err(|_| {
                invalid(
                    "occurred_at",
                    "must be an RFC 3339 timestamp such as 2026-11-28T04:00:00Z",
                )
            })?
            .with_timezone(&Utc);
    let summary = optional_str(message, "summary", "summary")?;

    let lead = match message.get("lead") {
        None | Some(Value::Null) => return Err(malformed("lead is missing")),
        Some(Value::Object(lead)) => lead,
        Some(_) => return Err(malformed("lead must be an object")),
    };
    let fields = ValidatedLead {
        id: lead_id(lead)?,
        name: optional_str(lead, "name", "lead.name")?,
        phone: optional_str(lead, "phone", "lead.phone")?,
        email: optional_str(lead, "email", "lead.email")?,
        source: source(lead)?,
        score: score(lead)?,
        stage: stage(lead)?,
        country: optional_str(lead, "country", "lead.country")?
            .map(|raw| {
                country_code(raw).ok_or_else(|| {
                    invalid(
                        "lead.country",
                        "must be an ISO 3166-1 alpha-2 country code such as QA or AU",
                    )
                })
            })
            .transpose()?,
        locale: optional_str(lead, "locale", "lead.locale")?
            .map(|raw| {
                parse_locale(raw).ok_or_else(|| {
                    invalid(
                        "lead.locale",
                        "must be a BCP 47 language tag such as ar-QA or en-AU",
                    )
                })
            })
            .transpose()?,
        summary,
    };

    let mut lead = Lead::normalise(fields);
    lead.occurred_at = Some(occurred_at);
    Ok(LeadMessage {
        version: MESSAGE_VERSION,
        tenant_id,
        plan,
        lead,
        occurred_at,
    })
}

/// Checked because it becomes part of a DynamoDB key (`LEAD#<id>#<provider>`).
fn lead_id(lead: &Map<String, Value>) -> Result<String, MessageError> {
    let id = required_str(lead, "id", "lead.id")?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if id.is_empty() || id.chars().count() > MAX_LEAD_ID_CHARS || !id.chars().all(allowed) {
        return Err(invalid(
            "lead.id",
            "must be 1 to 128 letters, digits, '.', '_', ':' or '-'",
        ));
    }
    Ok(id.to_string())
}

fn source(lead: &Map<String, Value>) -> Result<Option<String>, MessageError> {
    let Some(source) = optional_str(lead, "source", "lead.source")?.map(str::trim) else {
        return Ok(None);
    };
    if source.chars().count() > MAX_SOURCE_CHARS {
        return Err(invalid("lead.source", "must be at most 100 characters"));
    }
    Ok(Some(source.to_string()).filter(|s| !s.is_empty()))
}

fn score(lead: &Map<String, Value>) -> Result<Option<u8>, MessageError> {
    match lead.get("score") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n
            .as_u64()
            .filter(|s| *s <= MAX_SCORE)
            .and_then(|s| u8::try_from(s).ok())
            .map(Some)
            .ok_or_else(|| invalid("lead.score", "must be from 0 to 100")),
        Some(_) => Err(malformed("lead.score must be an integer")),
    }
}

fn stage(lead: &Map<String, Value>) -> Result<LeadStage, MessageError> {
    let raw = required_str(lead, "stage", "lead.stage")?.trim();
    LeadStage::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(raw))
        .ok_or_else(|| {
            invalid(
                "lead.stage",
                "must be one of new, contacted, qualified, proposal, won, lost",
            )
        })
}

/// `None` for a missing or `null` field; an error for any other non-string.
fn optional_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a str>, MessageError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(&format!("{field} must be a string"))),
    }
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<&'a str, MessageError> {
    optional_str(object, key, field)?.ok_or_else(|| malformed(&format!("{field} is missing")))
}

fn malformed(what: &str) -> MessageError {
    MessageError::Malformed(what.to_string())
}

fn invalid(field: &'static str, reason: &str) -> MessageError {
    MessageError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::lead::LeadWarning;

    const SQS_BATCH: &str = include_str!("../../../events/lead-push/sqs-batch.json");

    fn sample() -> Value {
        json!({
            "version": 1, "tenant_id": "tenant-demo", "plan": "pro",
            "lead": {"id": "lead-0001", "name": "Fatima Al-Kuwari", "phone": "+974 5555 1234",
                     "email": "Fatima@Example.qa", "source": "whatsapp", "score": 82,
                     "stage": "qualified", "country": "QA", "locale": "ar-QA"},
            "summary": "Asked about the annual plan.", "occurred_at": "2026-11-28T04:00:00Z"
        })
    }

    fn parse(value: &Value) -> Result<LeadMessage, MessageError> {
        parse_message(&value.to_string())
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Result<LeadMessage, MessageError> {
        let mut value = sample();
        edit(&mut value);
        parse(&value)
    }

    fn invalid_field(result: Result<LeadMessage, MessageError>) -> &'static str {
        match result {
            Err(MessageError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_sample_event_body_parses_into_a_normalised_lead() {
        let batch: Value = serde_json::from_str(SQS_BATCH).unwrap();
        let body = batch["Records"][0]["body"].as_str().unwrap();
        let message = parse_message(body).unwrap();
        assert_eq!(message.version, 1);
        assert_eq!(message.tenant_id.as_str(), "tenant-demo");
        assert_eq!(message.plan, Plan::Pro);
        assert_eq!(
            message.occurred_at.to_rfc3339(),
            "2026-11-28T04:00:00+00:00"
        );
        let lead = message.lead;
        assert_eq!(lead.id, "lead-0001");
        assert_eq!(lead.first_name.as_deref(), Some("Fatima"));
        assert_eq!(lead.last_name, "Al-Kuwari");
        assert_eq!(lead.email.as_deref(), Some("fatima@example.qa"));
        assert_eq!(lead.phone.as_deref(), Some("+97455551234"));
        assert_eq!(lead.source.as_deref(), Some("whatsapp"));
        assert_eq!(lead.score, Some(82));
        assert_eq!(lead.stage, LeadStage::Qualified);
        assert_eq!(lead.country.as_deref(), Some("QA"));
        assert!(lead.summary.is_some());
        assert!(lead.warnings.is_empty());
    }

    #[test]
    fn a_minimal_message_needs_only_the_required_fields() {
        let message = parse(&json!({
            "version": 1, "tenant_id": "t1", "plan": "free",
            "lead": {"id": "l1", "stage": "new"}, "occurred_at": "2026-11-28T07:00:00+03:00"
        }))
        .unwrap();
        assert_eq!(
            message.occurred_at.to_rfc3339(),
            "2026-11-28T04:00:00+00:00"
        );
        assert_eq!(message.lead.last_name, "Unknown");
        assert_eq!(message.lead.warnings, vec![LeadWarning::NameMissing]);
        assert!(!message.lead.has_contact_details());
    }

    #[test]
    fn nulls_stand_for_missing_optional_fields() {
        let message = with(|v| {
            for key in [
                "name", "phone", "email", "source", "score", "country", "locale",
            ] {
                v["lead"][key] = Value::Null;
            }
            v["summary"] = Value::Null;
        })
        .unwrap();
        assert_eq!(
            (message.lead.email, message.lead.phone, message.lead.score),
            (None, None, None)
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let message = with(|v| {
            v["channel_id"] = json!("wa-123");
            v["lead"]["language"] = json!({"nested": true});
        });
        assert!(message.is_ok());
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed_without_being_echoed() {
        let err = parse_message("{\"lead\": {\"email\": \"fatima@example.qa\"").unwrap_err();
        assert!(matches!(err, MessageError::Malformed(_)));
        assert!(!err.to_string().contains("fatima"));
        assert!(matches!(
            parse_message("[1]"),
            Err(MessageError::Malformed(_))
        ));
        assert!(matches!(parse_message(""), Err(MessageError::Malformed(_))));
    }

    #[test]
    fn a_missing_or_non_integer_version_is_malformed() {
        for version in [Value::Null, json!("1"), json!(1.5), json!(-1), json!(true)] {
            let result = with(|v| v["version"] = version.clone());
            assert!(
                matches!(result, Err(MessageError::Malformed(_))),
                "{version}"
            );
        }
        let result = with(|v| {
            v.as_object_mut().unwrap().remove("version");
        });
        assert_eq!(
            result.unwrap_err(),
            MessageError::Malformed("version is missing".into())
        );
    }

    #[test]
    fn any_version_but_1_is_unsupported() {
        assert_eq!(
            with(|v| v["version"] = json!(2)),
            Err(MessageError::UnsupportedVersion(2))
        );
        assert_eq!(
            with(|v| v["version"] = json!(0)),
            Err(MessageError::UnsupportedVersion(0))
        );
    }

    #[test]
    fn an_unsupported_version_is_refused_before_its_shape_is_read() {
        let result = parse(&json!({"version": 2, "something": "else entirely"}));
        assert_eq!(result, Err(MessageError::UnsupportedVersion(2)));
    }

    #[test]
    fn missing_required_fields_are_named() {
        let cases: [(&str, &str); 4] = [
            ("tenant_id", "tenant_id is missing"),
            ("plan", "plan is missing"),
            ("occurred_at", "occurred_at is missing"),
            ("lead", "lead is missing"),
        ];
        for (key, expected) in cases {
            let result = with(|v| {
                v.as_object_mut().unwrap().remove(key);
            });
            assert_eq!(result, Err(MessageError::Malformed(expected.into())));
        }
        for key in ["id", "stage"] {
            let result = with(|v| {
                v["lead"].as_object_mut().unwrap().remove(key);
            });
            assert_eq!(
                result,
                Err(MessageError::Malformed(format!("lead.{key} is missing")))
            );
        }
    }

    #[test]
    fn fields_of_the_wrong_type_are_malformed_and_named() {
        let result = with(|v| v["lead"]["score"] = json!("high"));
        assert_eq!(
            result,
            Err(MessageError::Malformed(
                "lead.score must be an integer".into()
            ))
        );
        let result = with(|v| v["lead"] = json!("lead-0001"));
        assert_eq!(
            result,
            Err(MessageError::Malformed("lead must be an object".into()))
        );
        let result = with(|v| v["tenant_id"] = json!(7));
        assert_eq!(
            result,
            Err(MessageError::Malformed("tenant_id must be a string".into()))
        );
    }

    #[test]
    fn errors_never_echo_personal_details() {
        let bodies = [
            with(|v| v["lead"]["email"] = json!(["fatima@example.qa"])),
            with(|v| v["lead"]["phone"] = json!(97455551234u64)),
            with(|v| v["lead"]["name"] = json!({"first": "Fatima"})),
            with(|v| v["lead"]["score"] = json!(97455551234u64)),
        ];
        for result in bodies {
            let text = result.unwrap_err().to_string();
            for pii in ["fatima", "Fatima", "97455551234"] {
                assert!(!text.contains(pii), "{text}");
            }
        }
    }

    #[test]
    fn tenant_ids_and_lead_ids_that_could_break_a_key_are_invalid() {
        assert_eq!(
            invalid_field(with(|v| v["tenant_id"] = json!("a#b"))),
            "tenant_id"
        );
        for bad in ["", "lead#1", "lead 1", "lead/1", "léad"] {
            assert_eq!(
                invalid_field(with(|v| v["lead"]["id"] = json!(bad))),
                "lead.id",
                "{bad}"
            );
        }
        let longest = "x".repeat(128);
        assert!(with(|v| v["lead"]["id"] = json!(longest)).is_ok());
        let too_long = "x".repeat(129);
        assert_eq!(
            invalid_field(with(|v| v["lead"]["id"] = json!(too_long))),
            "lead.id"
        );
        assert!(with(|v| v["lead"]["id"] = json!("crm:lead_1.v2-a")).is_ok());
    }

    #[test]
    fn the_plan_and_stage_are_read_case_insensitively_and_checked() {
        let message = with(|v| {
            v["plan"] = json!("Business");
            v["lead"]["stage"] = json!("WON");
        })
        .unwrap();
        assert_eq!(
            (message.plan, message.lead.stage),
            (Plan::Business, LeadStage::Won)
        );
        assert_eq!(
            invalid_field(with(|v| v["plan"] = json!("enterprise"))),
            "plan"
        );
        assert_eq!(
            invalid_field(with(|v| v["lead"]["stage"] = json!("hot"))),
            "lead.stage"
        );
    }

    #[test]
    fn the_score_must_be_from_0_to_100() {
        assert_eq!(
            with(|v| v["lead"]["score"] = json!(0)).unwrap().lead.score,
            Some(0)
        );
        assert_eq!(
            with(|v| v["lead"]["score"] = json!(100))
                .unwrap()
                .lead
                .score,
            Some(100)
        );
        assert_eq!(
            invalid_field(with(|v| v["lead"]["score"] = json!(101))),
            "lead.score"
        );
        assert_eq!(
            invalid_field(with(|v| v["lead"]["score"] = json!(-1))),
            "lead.score"
        );
        assert!(matches!(
            with(|v| v["lead"]["score"] = json!(82.5)),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn the_source_is_trimmed_and_at_most_100_chars() {
        let message = with(|v| v["lead"]["source"] = json!("  instagram ")).unwrap();
        assert_eq!(message.lead.source.as_deref(), Some("instagram"));
        assert_eq!(
            with(|v| v["lead"]["source"] = json!("  "))
                .unwrap()
                .lead
                .source,
            None
        );
        assert!(with(|v| v["lead"]["source"] = json!("ع".repeat(100))).is_ok());
        assert_eq!(
            invalid_field(with(|v| v["lead"]["source"] = json!("x".repeat(101)))),
            "lead.source"
        );
    }

    #[test]
    fn the_country_is_an_iso_code_in_any_case() {
        let message = with(|v| v["lead"]["country"] = json!("au")).unwrap();
        assert_eq!(message.lead.country.as_deref(), Some("AU"));
        assert_eq!(
            invalid_field(with(|v| v["lead"]["country"] = json!("UK"))),
            "lead.country"
        );
        assert_eq!(
            invalid_field(with(|v| v["lead"]["country"] = json!("Qatar"))),
            "lead.country"
        );
    }

    #[test]
    fn the_locale_is_a_bcp_47_tag() {
        assert!(with(|v| v["lead"]["locale"] = json!("en-AU")).is_ok());
        assert_eq!(
            invalid_field(with(|v| v["lead"]["locale"] = json!("Arabic (Qatar)"))),
            "lead.locale"
        );
    }

    #[test]
    fn the_locale_hints_the_phone_region_when_no_country_is_given() {
        let message = with(|v| {
            v["lead"]["country"] = Value::Null;
            v["lead"]["locale"] = json!("en-AU");
            v["lead"]["phone"] = json!("0412 345 678");
        })
        .unwrap();
        assert_eq!(message.lead.phone.as_deref(), Some("+61412345678"));
    }

    #[test]
    fn occurred_at_must_be_rfc_3339() {
        for bad in ["yesterday", "2026-11-28", "1795838400"] {
            assert_eq!(
                invalid_field(with(|v| v["occurred_at"] = json!(bad))),
                "occurred_at",
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unusable_phone_or_email_does_not_refuse_the_message() {
        let message = with(|v| {
            v["lead"]["phone"] = json!("call me");
            v["lead"]["email"] = json!("fatima@example");
        })
        .unwrap();
        assert_eq!((message.lead.phone, message.lead.email), (None, None));
        assert_eq!(message.lead.warnings.len(), 2);
    }
}
