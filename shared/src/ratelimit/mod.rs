//! One rate limit per CRM account, shared by every Lambda instance.
//!
//! Before a call of a stored connection, the HTTP client takes capacity from one DynamoDB item
//! per provider account (`pk = RATE#<provider>#<account>`, `sk = RATE`) with one conditional
//! `UpdateItem`; every instance that pushes to the account takes from the same item, so
//! together they stay under the provider's limit instead of each learning of it from a 429.
//!
//! Each of the provider's windows (the registry's `rate_limits`: a burst window and, where
//! there is one, an hourly or daily allocation) is a counter of the current slot: a rolling
//! window is counted in tenths, each capped at a share that keeps any rolling window within
//! the limit; a fixed window (a UTC day, a leaky bucket's second) is counted whole
//! ([`plan`]). The answers correct the item where the provider says more than the seed knows
//! (`X-HubSpot-RateLimit-Max / -Remaining`, `Sforce-Limit-Info`; [`headers`]), written only
//! when they differ from what the take saw.
//!
//! Lanes: a live take stamps the item; the backfill lane takes only while no live take
//! happened in the last two slots, and only up to its own cap (two thirds of a burst slot,
//! four fifths of a daily allocation), so live leads never wait behind a backfill.
//!
//! A refused take waits in-process when the wait is short (at most [`SHORT_WAIT`] at a time,
//! [`MAX_WAITED`] in all, and inside the invocation's deadline); otherwise the call fails with
//! `ProviderError::Throttled { retry_after }` and lead push defers the lead by that long.
//! A failing DynamoDB call lets the request through (the provider's own throttling still
//! applies): the limiter must never be the reason leads stop.

pub mod headers;
pub mod plan;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use reqwest::header::HeaderMap;

use crate::error::ProviderError;
use crate::push::Lane;
use crate::registry::{Provider, RateLimit};
use plan::WindowPlan;

/// The longest single wait spent in-process; longer ones defer the lead.
pub const SHORT_WAIT: Duration = Duration::from_secs(2);
/// The most one call waits in-process in all, over several refused takes.
pub const MAX_WAITED: Duration = Duration::from_secs(5);
/// What a wait must leave of the invocation.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);
/// Refused takes before giving up (each is one `UpdateItem`).
const MAX_ROUNDS: usize = 24;
/// An idle account's item expires after this (its corrections with it).
const ITEM_TTL: Duration = Duration::from_secs(2 * 24 * 60 * 60);
/// Accounts whose last state a process remembers; past this it forgets them all.
const KNOWN_ACCOUNTS: usize = 10_000;
/// Attribute-name prefixes of the (at most two) windows.
const PREFIXES: [&str; 2] = ["a", "b"];

/// A CRM account as the provider meters it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateKey {
    pub provider: Provider,
    /// The account's id (HubSpot's hub, Salesforce's org, a Freshsales domain, ...).
    pub account: String,
}

impl RateKey {
    pub fn new(provider: Provider, account: impl Into<String>) -> Self {
        RateKey {
            provider,
            account: account.into(),
        }
    }

    pub fn pk(&self) -> String {
        format!("RATE#{}#{}", self.provider.slug(), self.account)
    }
}

/// What a request carries so the client takes capacity for it: whose account, which lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateTag {
    pub key: RateKey,
    pub lane: Lane,
}

/// One window's current slot as the item held it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotState {
    pub slot: u64,
    pub taken: u32,
    pub cap: u32,
    pub backfill_cap: u32,
}

#[derive(Clone, Debug, Default)]
struct ItemState {
    windows: [Option<SlotState>; 2],
    hold_until: Option<u64>,
    live_at: Option<u64>,
}

/// A granted take: what the item held right after it, for the correction after the answer.
#[derive(Clone, Debug)]
pub struct Ticket {
    pub key: RateKey,
    pub windows: [Option<SlotState>; 2],
}

pub struct Limiter {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    /// The item as this process last saw it, per account: picks the update's form (same slot
    /// or a new one) and lets a take that would surely be refused wait without asking.
    known: Mutex<HashMap<RateKey, ItemState>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn plans(provider: Provider) -> Vec<(RateLimit, WindowPlan)> {
    provider
        .facts()
        .map(|f| f.rate_limits)
        .unwrap_or(&[])
        .iter()
        .take(PREFIXES.len())
        .map(|l| (*l, WindowPlan::new(l)))
        .collect()
}

/// Attribute names of window `i`: slot, taken, cap, backfill cap.
fn names(i: usize) -> [String; 4] {
    let p = PREFIXES[i];
    [
        format!("{p}_slot"),
        format!("{p}_taken"),
        format!("{p}_cap"),
        format!("{p}_bf"),
    ]
}

fn num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn parse(item: Option<&HashMap<String, AttributeValue>>) -> ItemState {
    let Some(item) = item else {
        return ItemState::default();
    };
    let mut state = ItemState {
        hold_until: num(item, "hold_until"),
        live_at: num(item, "live_at"),
        ..ItemState::default()
    };
    for (i, window) in state.windows.iter_mut().enumerate() {
        let [slot, taken, cap, bf] = names(i);
        if let (Some(slot), Some(taken), Some(cap), Some(bf)) = (
            num(item, &slot),
            num(item, &taken),
            num(item, &cap),
            num(item, &bf),
        ) {
            *window = Some(SlotState {
                slot,
                taken: taken as u32,
                cap: cap as u32,
                backfill_cap: bf as u32,
            });
        }
    }
    state
}

/// How long `lane` must wait before the item as known could grant a take (zero: try).
fn wait_for(
    state: &ItemState,
    plans: &[(RateLimit, WindowPlan)],
    lane: Lane,
    now: u64,
) -> Duration {
    let mut wait = 0u64;
    if let Some(hold) = state.hold_until {
        wait = wait.max(hold.saturating_sub(now));
    }
    if lane == Lane::Backfill {
        if let (Some(live), Some((_, shortest))) = (state.live_at, plans.first()) {
            let gap = plan::live_gap(shortest).as_millis() as u64;
            wait = wait.max((live + gap).saturating_sub(now));
        }
    }
    for (i, (_, plan)) in plans.iter().enumerate() {
        let Some(seen) = state.windows[i] else {
            continue;
        };
        let slot = plan.slot(now);
        let cap = match lane {
            Lane::Live => seen.cap,
            Lane::Backfill => seen.backfill_cap,
        };
        if seen.slot == slot && seen.taken >= cap {
            wait = wait.max(plan.until_after(slot, now).as_millis() as u64);
        } else if seen.slot > slot {
            // Another instance's clock is ahead of ours: its slot starts soon.
            wait = wait.max((seen.slot * plan.slot_ms).saturating_sub(now));
        }
    }
    Duration::from_millis(wait)
}

/// An `UpdateItem` under construction.
#[derive(Default)]
struct Update {
    conditions: Vec<String>,
    sets: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{}", attribute.replace('_', ""));
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    /// DynamoDB refuses names the expressions do not use: keep only those they do.
    fn drop_unused_names(&mut self) {
        let text = format!("{} {}", self.conditions.join(" "), self.sets.join(" "));
        let used = |placeholder: &str| {
            text.match_indices(placeholder).any(|(at, _)| {
                !text[at + placeholder.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            })
        };
        self.names.retain(|placeholder, _| used(placeholder));
    }

    fn value(&mut self, placeholder: &str, n: u64) -> String {
        self.values
            .insert(placeholder.to_string(), AttributeValue::N(n.to_string()));
        placeholder.to_string()
    }
}

/// The take as one conditional update: for each window, one more in the current slot (below
/// the lane's cap) or the first of a new slot; no hold in force; for the backfill lane, no
/// live take within the gap.
fn take_update(
    state: &ItemState,
    plans: &[(RateLimit, WindowPlan)],
    lane: Lane,
    now: u64,
) -> Update {
    let mut u = Update::default();
    let hold = u.name("hold_until");
    let now_v = u.value(":now", now);
    u.conditions.push(format!(
        "(attribute_not_exists({hold}) OR {hold} <= {now_v})"
    ));
    let ttl = u.name("ttl");
    let ttl_v = u.value(":ttl", now / 1000 + ITEM_TTL.as_secs());
    u.sets.push(format!("{ttl} = {ttl_v}"));
    let one = u.value(":one", 1);
    for (i, (_, plan)) in plans.iter().enumerate() {
        let [slot_a, taken_a, cap_a, bf_a] = names(i).map(|n| u.name(&n));
        let slot = plan.slot(now);
        let slot_v = u.value(&format!(":s{i}"), slot);
        let same = state.windows[i].is_some_and(|w| w.slot == slot);
        if same {
            let limit = match lane {
                Lane::Live => &cap_a,
                Lane::Backfill => &bf_a,
            };
            u.conditions
                .push(format!("{slot_a} = {slot_v} AND {taken_a} < {limit}"));
            u.sets.push(format!("{taken_a} = {taken_a} + {one}"));
        } else {
            let cap_v = u.value(&format!(":c{i}"), u64::from(plan.cap));
            let bf_v = u.value(&format!(":f{i}"), u64::from(plan.backfill_cap));
            u.conditions.push(format!(
                "(attribute_not_exists({slot_a}) OR {slot_a} < {slot_v})"
            ));
            u.sets.push(format!("{slot_a} = {slot_v}"));
            u.sets.push(format!("{taken_a} = {one}"));
            u.sets
                .push(format!("{cap_a} = if_not_exists({cap_a}, {cap_v})"));
            u.sets
                .push(format!("{bf_a} = if_not_exists({bf_a}, {bf_v})"));
        }
    }
    let live = u.name("live_at");
    match lane {
        Lane::Live => u.sets.push(format!("{live} = {now_v}")),
        Lane::Backfill => {
            if let Some((_, shortest)) = plans.first() {
                let gap = plan::live_gap(shortest).as_millis() as u64;
                let latest = u.value(":lv", now.saturating_sub(gap));
                u.conditions.push(format!(
                    "(attribute_not_exists({live}) OR {live} <= {latest})"
                ));
            }
        }
    }
    u.drop_unused_names();
    u
}

impl Limiter {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Limiter {
            ddb,
            table: table.into(),
            known: Mutex::new(HashMap::new()),
        }
    }

    fn key_attributes(&self, key: &RateKey) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(key.pk())),
            ("sk".to_string(), AttributeValue::S("RATE".to_string())),
        ])
    }

    fn known(&self, key: &RateKey) -> ItemState {
        self.known
            .lock()
            .map(|k| k.get(key).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn remember(&self, key: &RateKey, state: ItemState) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= KNOWN_ACCOUNTS && !known.contains_key(key) {
                known.clear();
            }
            known.insert(key.clone(), state);
        }
    }

    /// Takes capacity for one request of `tag`'s account, waiting in-process when the wait
    /// is short. `Ok(None)`: the provider has no documented limit, or the table could not be
    /// reached (the request goes anyway).
    pub async fn take(&self, tag: &RateTag) -> Result<Option<Ticket>, ProviderError> {
        let provider = tag.key.provider;
        let plans = plans(provider);
        if plans.is_empty() {
            return Ok(None);
        }
        let mut waited = Duration::ZERO;
        for _ in 0..MAX_ROUNDS {
            let now = now_ms();
            let state = self.known(&tag.key);
            let wait = wait_for(&state, &plans, tag.lane, now);
            if !wait.is_zero() {
                self.pause(provider, wait, &mut waited).await?;
                continue;
            }
            let update = take_update(&state, &plans, tag.lane, now);
            let result = self
                .ddb
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.key_attributes(&tag.key)))
                .condition_expression(update.conditions.join(" AND "))
                .update_expression(format!("SET {}", update.sets.join(", ")))
                .set_expression_attribute_names(Some(update.names))
                .set_expression_attribute_values(Some(update.values))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(output) => {
                    let state = parse(output.attributes.as_ref());
                    let windows = state.windows;
                    self.remember(&tag.key, state);
                    return Ok(Some(Ticket {
                        key: tag.key.clone(),
                        windows,
                    }));
                }
                Err(SdkError::ServiceError(failure)) => {
                    if let UpdateItemError::ConditionalCheckFailedException(refused) = failure.err()
                    {
                        // The item as it is now decides the wait, or the next form.
                        self.remember(&tag.key, parse(refused.item.as_ref()));
                        continue;
                    }
                    return Ok(self.fail_open(failure.err().code(), failure.err().message()));
                }
                Err(other) => return Ok(self.fail_open(other.code(), other.message())),
            }
        }
        Err(ProviderError::Throttled {
            provider,
            retry_after: Some(SHORT_WAIT),
        })
    }

    fn fail_open(&self, code: Option<&str>, message: Option<&str>) -> Option<Ticket> {
        tracing::warn!(
            code = code.unwrap_or("dispatch"),
            message = message.unwrap_or(""),
            "the rate limiter's table failed; sending without it"
        );
        None
    }

    /// Waits `wait` in-process if it is short and the invocation has time; otherwise says how
    /// long the caller should defer.
    async fn pause(
        &self,
        provider: Provider,
        wait: Duration,
        waited: &mut Duration,
    ) -> Result<(), ProviderError> {
        let fits_deadline = crate::refresh::deadline::covers(wait + DEADLINE_MARGIN);
        if wait > SHORT_WAIT || *waited + wait > MAX_WAITED || !fits_deadline {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "rate limit reached; deferring"
            );
            return Err(ProviderError::Throttled {
                provider,
                retry_after: Some(wait),
            });
        }
        *waited += wait;
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Corrects the item from what the answer to a granted take says of the provider's
    /// window, when that differs from what the take saw: a different limit (a paid portal, a
    /// bigger org), or fewer requests left than the slot still allows (others spend the same
    /// account). Costs a write only then.
    pub async fn correct(&self, ticket: &Ticket, answer: &HeaderMap) {
        let Some(reading) = headers::read(ticket.key.provider, answer) else {
            return;
        };
        let plans = plans(ticket.key.provider);
        let (Some((limit, seeded)), Some(seen)) = (
            plans.get(reading.window),
            ticket.windows.get(reading.window).copied().flatten(),
        ) else {
            return;
        };
        let [slot_n, taken_n, cap_n, bf_n] = names(reading.window);
        let mut plan = *seeded;
        plan.cap = seen.cap;
        plan.backfill_cap = seen.backfill_cap;
        if let Some(provider_limit) = reading.limit {
            let mut corrected = *seeded;
            corrected.set_limit(limit.shape, provider_limit);
            if corrected.cap != seen.cap {
                let mut u = Update::default();
                let (cap_a, bf_a) = (u.name(&cap_n), u.name(&bf_n));
                let cap_v = u.value(":c", u64::from(corrected.cap));
                let bf_v = u.value(":f", u64::from(corrected.backfill_cap));
                u.sets.push(format!("{cap_a} = {cap_v}, {bf_a} = {bf_v}"));
                self.write_correction(&ticket.key, u, "limit").await;
                plan = corrected;
            }
        }
        let Some(remaining) = reading.remaining else {
            return;
        };
        let ours = plan.cap.saturating_sub(seen.taken);
        // An allocation's count also holds other apps' calls: ignore a drift under 1 %.
        let tolerance = if plan.allocation {
            (plan.cap / 100).max(1)
        } else {
            0
        };
        if remaining.saturating_add(tolerance) >= ours && remaining > 0 {
            return;
        }
        let target = plan.cap.saturating_sub(remaining);
        let mut u = Update::default();
        let (slot_a, taken_a) = (u.name(&slot_n), u.name(&taken_n));
        let slot_v = u.value(":s", seen.slot);
        let target_v = u.value(":t", u64::from(target));
        // A spent window is written even when the slot is already full, for its hold.
        let below = if remaining == 0 { "<=" } else { "<" };
        u.conditions.push(format!(
            "{slot_a} = {slot_v} AND {taken_a} {below} {target_v}"
        ));
        u.sets.push(format!("{taken_a} = {target_v}"));
        if remaining == 0 && !plan.allocation {
            // The provider's rolling window is spent: nobody sends for one slot.
            let hold = u.name("hold_until");
            let hold_v = u.value(":h", now_ms() + plan.slot_ms);
            u.sets.push(format!("{hold} = {hold_v}"));
        }
        if target > seen.taken || remaining == 0 {
            self.write_correction(&ticket.key, u, "remaining").await;
        }
    }

    async fn write_correction(&self, key: &RateKey, u: Update, what: &'static str) {
        let mut call = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key_attributes(key)))
            .update_expression(format!("SET {}", u.sets.join(", ")))
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .return_values(ReturnValue::AllNew);
        if !u.conditions.is_empty() {
            call = call.condition_expression(u.conditions.join(" AND "));
        }
        match call.send().await {
            Ok(output) => {
                tracing::info!(
                    correction = what,
                    "rate limit corrected from the provider's answer"
                );
                self.remember(key, parse(output.attributes.as_ref()));
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
            Err(e) => tracing::warn!(
                code = e.code().unwrap_or("dispatch"),
                "rate limit correction not written"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::WindowShape;

    fn hubspot() -> Vec<(RateLimit, WindowPlan)> {
        plans(Provider::Hubspot)
    }

    #[test]
    fn keys_name_the_provider_and_the_account() {
        assert_eq!(
            RateKey::new(Provider::Hubspot, "4711").pk(),
            "RATE#hubspot#4711"
        );
        assert_eq!(
            hubspot()[0].0.shape,
            WindowShape::Rolling,
            "HubSpot's window is rolling"
        );
    }

    #[test]
    fn a_full_slot_waits_for_the_next_and_backfill_waits_for_live_to_go_idle() {
        let plans = hubspot();
        let now = 1_765_000_000_500;
        let slot = plans[0].1.slot(now);
        let mut state = ItemState::default();
        state.windows[0] = Some(SlotState {
            slot,
            taken: 6,
            cap: 9,
            backfill_cap: 6,
        });
        assert_eq!(wait_for(&state, &plans, Lane::Live, now), Duration::ZERO);
        // Backfill's cap is reached before live's.
        assert_eq!(
            wait_for(&state, &plans, Lane::Backfill, now),
            Duration::from_millis(500)
        );
        state.windows[0].as_mut().unwrap().taken = 9;
        assert_eq!(
            wait_for(&state, &plans, Lane::Live, now),
            Duration::from_millis(500)
        );
        // A live take 300 ms ago keeps backfill off for two slots (2 s) from it.
        let mut idle_slot = ItemState {
            live_at: Some(now - 300),
            ..ItemState::default()
        };
        assert_eq!(
            wait_for(&idle_slot, &plans, Lane::Backfill, now),
            Duration::from_millis(1_700)
        );
        assert_eq!(
            wait_for(&idle_slot, &plans, Lane::Live, now),
            Duration::ZERO
        );
        // A hold stops both.
        idle_slot.hold_until = Some(now + 4_000);
        assert_eq!(
            wait_for(&idle_slot, &plans, Lane::Live, now),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn the_update_takes_in_the_same_slot_or_opens_a_new_one() {
        let plans = hubspot();
        let now = 1_765_000_000_500;
        let fresh = take_update(&ItemState::default(), &plans, Lane::Live, now);
        let set = fresh.sets.join(", ");
        assert!(set.contains("#aslot = :s0"), "{set}");
        assert!(set.contains("#acap = if_not_exists(#acap, :c0)"), "{set}");
        assert!(set.contains("#liveat = :now"), "{set}");
        assert_eq!(fresh.values[":c0"], AttributeValue::N("9".into()));
        let mut state = ItemState::default();
        state.windows[0] = Some(SlotState {
            slot: plans[0].1.slot(now),
            taken: 1,
            cap: 9,
            backfill_cap: 6,
        });
        let same = take_update(&state, &plans, Lane::Backfill, now);
        let cond = same.conditions.join(" AND ");
        assert!(cond.contains("#ataken < #abf"), "{cond}");
        assert!(cond.contains("#liveat <= :lv"), "{cond}");
        assert!(!same.sets.join(",").contains("#liveat"));
        assert_eq!(same.names["#ttl"], "ttl");
        // DynamoDB refuses unused names: the backfill take does not name live's cap.
        assert!(!same.names.contains_key("#acap"));
        let live = take_update(&state, &plans, Lane::Live, now);
        assert!(!live.names.contains_key("#abf"));
        assert!(live.names.contains_key("#acap"));
    }
}
