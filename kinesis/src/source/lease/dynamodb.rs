//! The lease table in DynamoDB: KCL's item layout, and each [`LeaseOp`] as the conditional
//! call KCL makes for it. The thin I/O shell of [`LeaseCoordinator`]; the decisions are
//! all there.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use super::item::{attr, Lease, LeaseCheckpoint};
use super::{LeaseAnswer, LeaseCoordinator, LeaseOp};

/// The index KCL 3.x adds to its lease table (leases by owner).
pub const OWNER_INDEX: &str = "LeaseOwnerToLeaseKeyIndex";

/// Creates the lease table with KCL's layout if it does not exist (key `leaseKey`, on
/// demand, KCL 3.x's owner index), and waits until it is active (at most `wait`).
pub async fn ensure_table(client: &Client, table: &str, wait: Duration) -> Result<(), String> {
    let described = client.describe_table().table_name(table).send().await;
    match described {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceNotFoundException") => {
            let s = |name: &str| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| e.to_string())
            };
            let key = |name: &str, kind: KeyType| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(|e| e.to_string())
            };
            let index = GlobalSecondaryIndex::builder()
                .index_name(OWNER_INDEX)
                .key_schema(key(attr::LEASE_OWNER, KeyType::Hash)?)
                .key_schema(key(attr::LEASE_KEY, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(|e| e.to_string())?;
            let created = client
                .create_table()
                .table_name(table)
                .attribute_definitions(s(attr::LEASE_KEY)?)
                .attribute_definitions(s(attr::LEASE_OWNER)?)
                .key_schema(key(attr::LEASE_KEY, KeyType::Hash)?)
                .global_secondary_indexes(index)
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await;
            if let Err(e) = created {
                // Made meanwhile by another worker: fine.
                if e.code() != Some("ResourceInUseException") {
                    return Err(describe(&e));
                }
            }
        }
        Err(e) => return Err(describe(&e)),
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let status = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| describe(&e))?
            .table()
            .and_then(|t| t.table_status().cloned());
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "lease table {table} not active after {wait:?}: {status:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn describe<E: ProvideErrorMetadata + std::fmt::Display>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(),
    }
}

fn failed<E: ProvideErrorMetadata + std::fmt::Display>(e: &E) -> LeaseAnswer {
    if e.code() == Some("ConditionalCheckFailedException") {
        return LeaseAnswer::ConditionFailed;
    }
    LeaseAnswer::Failed {
        code: e.code().unwrap_or("Unknown").to_owned(),
        message: describe(e),
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A lease as a DynamoDB item, as KCL writes it (sets only when not empty: DynamoDB has
/// no empty sets).
pub fn to_item(lease: &Lease) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert(attr::LEASE_KEY.to_owned(), s(&lease.lease_key));
    item.insert(attr::ENTITY_TYPE.to_owned(), s(attr::LEASE_ENTITY));
    if let Some(owner) = &lease.lease_owner {
        item.insert(attr::LEASE_OWNER.to_owned(), s(owner));
    }
    item.insert(attr::LEASE_COUNTER.to_owned(), n(lease.lease_counter));
    let (checkpoint, sub) = lease.checkpoint.to_attributes();
    item.insert(attr::CHECKPOINT.to_owned(), s(checkpoint));
    item.insert(attr::CHECKPOINT_SUB_SEQUENCE_NUMBER.to_owned(), n(sub));
    item.insert(
        attr::OWNER_SWITCHES_SINCE_CHECKPOINT.to_owned(),
        n(lease.owner_switches_since_checkpoint),
    );
    if !lease.parent_shard_ids.is_empty() {
        item.insert(
            attr::PARENT_SHARD_ID.to_owned(),
            AttributeValue::Ss(lease.parent_shard_ids.clone()),
        );
    }
    if !lease.child_shard_ids.is_empty() {
        item.insert(
            attr::CHILD_SHARD_IDS.to_owned(),
            AttributeValue::Ss(lease.child_shard_ids.clone()),
        );
    }
    if let Some(k) = &lease.starting_hash_key {
        item.insert(attr::STARTING_HASH_KEY.to_owned(), s(k));
    }
    if let Some(k) = &lease.ending_hash_key {
        item.insert(attr::ENDING_HASH_KEY.to_owned(), s(k));
    }
    if let Some(o) = &lease.checkpoint_owner {
        item.insert(attr::CHECKPOINT_OWNER.to_owned(), s(o));
    }
    item
}

/// A DynamoDB item as a lease; `None` for an item of another kind (KCL 3's leader lock,
/// migration state, worker metrics), without a key or with an unreadable checkpoint.
/// Attributes it does not know (KCL's `throughputKBps`, ...) are ignored.
pub fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    if text(attr::ENTITY_TYPE).is_some_and(|kind| kind != attr::LEASE_ENTITY) {
        return None;
    }
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let set = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default()
    };
    let checkpoint = LeaseCheckpoint::from_attributes(
        &text(attr::CHECKPOINT)?,
        number(attr::CHECKPOINT_SUB_SEQUENCE_NUMBER).unwrap_or(0),
    )?;
    Some(Lease {
        lease_key: text(attr::LEASE_KEY)?,
        lease_owner: text(attr::LEASE_OWNER).filter(|o| !o.is_empty()),
        lease_counter: number(attr::LEASE_COUNTER).unwrap_or(0),
        checkpoint,
        owner_switches_since_checkpoint: number(attr::OWNER_SWITCHES_SINCE_CHECKPOINT).unwrap_or(0),
        parent_shard_ids: set(attr::PARENT_SHARD_ID),
        child_shard_ids: set(attr::CHILD_SHARD_IDS),
        starting_hash_key: text(attr::STARTING_HASH_KEY),
        ending_hash_key: text(attr::ENDING_HASH_KEY),
        checkpoint_owner: text(attr::CHECKPOINT_OWNER).filter(|o| !o.is_empty()),
    })
}

/// Makes one operation of worker `worker` on table `table`.
pub async fn execute(client: &Client, table: &str, worker: &str, op: LeaseOp) -> LeaseAnswer {
    match op {
        LeaseOp::Scan => scan(client, table).await,
        LeaseOp::Create(lease) => match client
            .put_item()
            .table_name(table)
            .set_item(Some(to_item(&lease)))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .send()
            .await
        {
            Ok(_) => LeaseAnswer::Written,
            Err(e) => failed(&e),
        },
        LeaseOp::Renew { lease_key, counter } => {
            let request = update_h(client, table, &lease_key, worker, counter)
                .update_expression("SET #c = :next")
                .condition_expression("#c = :c AND #o = :me AND attribute_not_exists(#h)");
            written(request).await
        }
        LeaseOp::Take {
            lease_key,
            counter,
            owner,
            checkpoint_owner,
        } => {
            let mut request = update_h(client, table, &lease_key, worker, counter);
            request = if owner.as_deref() != Some(worker) {
                request
                    .update_expression(
                        "SET #o = :me, #c = :next, #sw = if_not_exists(#sw, :zero) + :one REMOVE #h",
                    )
                    .expression_attribute_names("#sw", attr::OWNER_SWITCHES_SINCE_CHECKPOINT)
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":one", n(1))
            } else {
                request.update_expression("SET #o = :me, #c = :next REMOVE #h")
            };
            let owner_is = match &owner {
                Some(o) => {
                    request = request.expression_attribute_values(":owner", s(o));
                    "#o = :owner"
                }
                None => "attribute_not_exists(#o)",
            };
            let handoff_is = match &checkpoint_owner {
                Some(o) => {
                    request = request.expression_attribute_values(":was", s(o));
                    "#h = :was"
                }
                None => "attribute_not_exists(#h)",
            };
            written(
                request.condition_expression(format!("#c = :c AND {owner_is} AND {handoff_is}")),
            )
            .await
        }
        LeaseOp::Read { lease_key } => read(client, table, &lease_key).await,
        LeaseOp::StartHandoff {
            lease_key,
            counter,
            owner,
        } => {
            // The counter is left as it is (as KCL 3 does): no `:next` to bind.
            let request = client
                .update_item()
                .table_name(table)
                .key(attr::LEASE_KEY, s(&lease_key))
                .expression_attribute_names("#c", attr::LEASE_COUNTER)
                .expression_attribute_names("#o", attr::LEASE_OWNER)
                .expression_attribute_names("#h", attr::CHECKPOINT_OWNER)
                .expression_attribute_values(":me", s(worker))
                .expression_attribute_values(":c", n(counter))
                .expression_attribute_values(":owner", s(&owner))
                .update_expression("SET #o = :me, #h = :owner")
                .condition_expression("#c = :c AND #o = :owner AND attribute_not_exists(#h)");
            written(request).await
        }
        LeaseOp::FinishHandoff {
            lease_key,
            counter,
            checkpoint,
            next_owner,
        } => {
            let mut request = update_h(client, table, &lease_key, worker, counter)
                .condition_expression("#c = :c AND #h = :me AND #o = :next_owner")
                .expression_attribute_values(":next_owner", s(&next_owner));
            request = match &checkpoint {
                Some(cp) => with_checkpoint(request, cp).update_expression(
                    "SET #cp = :cp, #sub = :sub, #sw = :zero, #c = :next REMOVE #h, #p0, #p1, #p2",
                ),
                None => request.update_expression("SET #c = :next REMOVE #h"),
            };
            written(request).await
        }
        LeaseOp::Checkpoint {
            lease_key,
            counter,
            checkpoint,
        } => {
            let request = update(client, table, &lease_key, worker, counter)
                .update_expression(
                    "SET #cp = :cp, #sub = :sub, #sw = :zero, #c = :next REMOVE #p0, #p1, #p2",
                )
                .condition_expression("#c = :c AND #o = :me");
            written(with_checkpoint(request, &checkpoint)).await
        }
        LeaseOp::Release { lease_key, counter } => {
            let request = update(client, table, &lease_key, worker, counter)
                .update_expression("REMOVE #o SET #c = :next")
                .condition_expression("#c = :c AND #o = :me");
            written(request).await
        }
    }
}

type UpdateItem = aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

/// An UpdateItem by `worker` on one lease whose counter it expects at `counter`: binds the
/// names `#c` (counter) and `#o` (owner) and the values `:me`, `:c` and `:next`
/// (`counter + 1`); the caller adds the update and the condition.
fn update(client: &Client, table: &str, lease_key: &str, worker: &str, counter: u64) -> UpdateItem {
    client
        .update_item()
        .table_name(table)
        .key(attr::LEASE_KEY, s(lease_key))
        .expression_attribute_names("#c", attr::LEASE_COUNTER)
        .expression_attribute_names("#o", attr::LEASE_OWNER)
        .expression_attribute_values(":me", s(worker))
        .expression_attribute_values(":c", n(counter))
        .expression_attribute_values(":next", n(counter + 1))
}

/// [`update`] that also names KCL 3's handoff attribute `#h` (`checkpointOwner`).
fn update_h(
    client: &Client,
    table: &str,
    lease_key: &str,
    worker: &str,
    counter: u64,
) -> UpdateItem {
    update(client, table, lease_key, worker, counter)
        .expression_attribute_names("#h", attr::CHECKPOINT_OWNER)
}

/// Binds what a checkpoint writes: `#cp = :cp`, `#sub = :sub` (the checkpoint), `#sw` and
/// `:zero` (owner switches back to 0), and `#p0`-`#p2` (KCL's pending checkpoint, removed).
fn with_checkpoint(request: UpdateItem, checkpoint: &LeaseCheckpoint) -> UpdateItem {
    let (text, sub) = checkpoint.to_attributes();
    request
        .expression_attribute_names("#p0", attr::PENDING_CHECKPOINT[0])
        .expression_attribute_names("#p1", attr::PENDING_CHECKPOINT[1])
        .expression_attribute_names("#p2", attr::PENDING_CHECKPOINT[2])
        .expression_attribute_names("#cp", attr::CHECKPOINT)
        .expression_attribute_names("#sub", attr::CHECKPOINT_SUB_SEQUENCE_NUMBER)
        .expression_attribute_names("#sw", attr::OWNER_SWITCHES_SINCE_CHECKPOINT)
        .expression_attribute_values(":cp", s(text))
        .expression_attribute_values(":sub", n(sub))
        .expression_attribute_values(":zero", n(0))
}

/// Sends a conditional write: written, its condition failed, or another error.
async fn written(request: UpdateItem) -> LeaseAnswer {
    request
        .send()
        .await
        .map_or_else(|e| failed(&e), |_| LeaseAnswer::Written)
}

/// One lease, strongly consistent: `Scanned` with it, or with nothing when there is no
/// such lease (or the item is not one).
async fn read(client: &Client, table: &str, lease_key: &str) -> LeaseAnswer {
    match client
        .get_item()
        .table_name(table)
        .key(attr::LEASE_KEY, s(lease_key))
        .consistent_read(true)
        .send()
        .await
    {
        Ok(out) => LeaseAnswer::Scanned(out.item().and_then(from_item).into_iter().collect()),
        Err(e) => failed(&e),
    }
}

/// Every item, all pages, strongly consistent; unreadable items are skipped (they are not
/// leases this worker could take).
async fn scan(client: &Client, table: &str) -> LeaseAnswer {
    let mut leases = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = match client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) => return failed(&e),
        };
        leases.extend(page.items().iter().filter_map(from_item));
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return LeaseAnswer::Scanned(leases),
        }
    }
}

/// Runs a coordinator against a table until it is shut down (every lease released) or
/// `limit` passes: for a worker that stops.
pub async fn shut_down(
    coordinator: &mut LeaseCoordinator,
    client: &Client,
    table: &str,
    limit: Duration,
) {
    coordinator.shutdown();
    let worker = coordinator.config().worker_id.clone();
    let deadline = tokio::time::Instant::now() + limit;
    while !coordinator.is_shut_down() && tokio::time::Instant::now() < deadline {
        let now = tokio::time::Instant::now().into_std();
        match coordinator.poll_call(now) {
            Some(call) => {
                let answer = execute(client, table, &worker, call.op).await;
                coordinator.on_answer(call.id, answer, tokio::time::Instant::now().into_std());
            }
            None => {
                let wake = coordinator
                    .poll_timeout()
                    .map_or(deadline, tokio::time::Instant::from_std)
                    .min(deadline);
                tokio::time::sleep_until(wake).await;
            }
        }
    }
}
