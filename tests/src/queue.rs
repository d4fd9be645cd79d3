//! The lead queue and its DLQ on moto, and the part of Lambda's SQS event source mapping the
//! tests need: receive a batch, hand it to the function as an `SqsEvent`, delete what it settled.
//!
//! Every message is sent as the message contract says (docs/message-contract.md): with
//! `MessageGroupId` set to the tenant id, which makes a standard queue a fair queue. moto
//! (5.2.x) takes a group id on a standard queue, keeps it and returns it as the
//! `MessageGroupId` attribute, but does not reorder deliveries by tenant: the fairness itself
//! is SQS's and cannot be observed here.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use shared::push::Lane;

pub struct LeadQueues {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
    pub dead_letter_url: String,
    /// Which lane this queue is: the lead queue, or the backfill queue.
    pub lane: Lane,
}

/// What one run of lead-push did with a batch.
#[derive(Debug)]
pub struct Delivery {
    pub received: Vec<String>,
    /// Message ids reported as batch item failures (to be retried).
    pub failed: Vec<String>,
}

/// The message group of a lead message by the contract: its tenant id. `None` for a body that
/// names no tenant (not a lead message).
pub fn group_of(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("tenant_id")?
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

impl LeadQueues {
    /// How many messages wait delayed (`ApproximateNumberOfMessagesDelayed`; -1 when moto does
    /// not say).
    pub async fn delayed_count(&self) -> i64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap_or_default();
        attributes
            .get(&QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1)
    }

    /// A queue and a DLQ, with the template's redrive policy (5 receives).
    pub async fn create(aws: &SdkConfig, prefix: &str) -> anyhow::Result<LeadQueues> {
        Self::create_lane(aws, prefix, Lane::Live).await
    }

    /// The queue (and its DLQ) of `lane`: `<prefix>-leads` or `<prefix>-backfill`, as the
    /// template names them.
    pub async fn create_lane(
        aws: &SdkConfig,
        prefix: &str,
        lane: Lane,
    ) -> anyhow::Result<LeadQueues> {
        let name = match lane {
            Lane::Live => format!("{prefix}-leads"),
            Lane::Backfill => format!("{prefix}-backfill"),
        };
        let sqs = aws_sdk_sqs::Client::new(aws);
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await?;
        let dead_letter_url = dlq.queue_url.unwrap_or_default();
        let dlq_arn = queue_arn(&sqs, &dead_letter_url).await?;
        let queue = sqs
            .create_queue()
            .queue_name(name)
            .attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5" })
                    .to_string(),
            )
            .send()
            .await?;
        let url = queue.queue_url.unwrap_or_default();
        let arn = queue_arn(&sqs, &url).await?;
        Ok(LeadQueues {
            sqs,
            url,
            arn,
            dead_letter_url,
            lane,
        })
    }

    /// Sends a message as the lead pipeline does: in the group of the tenant its body names.
    pub async fn send(&self, body: &str) {
        self.send_in_group(body, group_of(body).as_deref()).await;
    }

    /// Sends a message in the given message group (or none).
    pub async fn send_in_group(&self, body: &str, group: Option<&str>) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_group_id(group.map(str::to_string))
            .send()
            .await
            .expect("SendMessage");
    }

    /// Receives up to `expected` messages as one Lambda SQS event.
    pub async fn receive(&self, expected: usize) -> SqsEvent {
        let mut records = Vec::new();
        for _ in 0..5 {
            if records.len() >= expected {
                break;
            }
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(((expected - records.len()).min(10)) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .visibility_timeout(60)
                .send()
                .await
                .expect("ReceiveMessage");
            for message in output.messages.unwrap_or_default() {
                records.push(lambda_record(message, &self.arn));
            }
        }
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    /// Deletes settled messages; makes failed ones visible again at once.
    pub async fn settle(&self, event: &SqsEvent, response: &SqsBatchResponse) -> Delivery {
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let mut received = Vec::new();
        for record in &event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let receipt = record.receipt_handle.clone().unwrap_or_default();
            if failed.contains(&id) {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("ChangeMessageVisibility");
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
            received.push(id);
        }
        Delivery { received, failed }
    }

    /// Everything in the DLQ: (body, message attributes).
    pub async fn dead_letters(&self) -> Vec<(String, HashMap<String, String>)> {
        let mut letters = Vec::new();
        for _ in 0..3 {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.dead_letter_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let attributes = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                    .collect();
                letters.push((m.body.unwrap_or_default(), attributes));
            }
        }
        letters
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    Ok(attributes
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default())
}

/// A v1 lead message.
pub fn lead_message(
    tenant: &str,
    plan: &str,
    lead: serde_json::Value,
    summary: Option<&str>,
) -> String {
    serde_json::json!({
        "version": 1,
        "tenant_id": tenant,
        "plan": plan,
        "lead": lead,
        "summary": summary,
        "occurred_at": "2026-11-28T04:00:00Z"
    })
    .to_string()
}

/// `bodies` as the messages of one lead-push invocation, each on its `receive_count`-th receive.
pub fn inbound_messages(
    bodies: &[String],
    receive_count: u32,
) -> Vec<shared::push::InboundMessage> {
    bodies
        .iter()
        .map(|body| shared::push::InboundMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            body: body.clone(),
            receive_count,
            ..Default::default()
        })
        .collect()
}

/// A received SQS message as Lambda's SQS trigger hands it over: its system attributes, and its
/// message attributes (the relay's own deferral attributes among them).
pub fn lambda_record(message: aws_sdk_sqs::types::Message, queue_arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id;
    record.receipt_handle = message.receipt_handle;
    record.body = message.body;
    record.md5_of_body = message.md5_of_body;
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(queue_arn.to_string());
    record.aws_region = Some("us-east-1".into());
    record.attributes = message
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect::<HashMap<_, _>>();
    record.message_attributes = message
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.data_type = Some(value.data_type);
            attribute.string_value = value.string_value;
            (name, attribute)
        })
        .collect();
    record
}
