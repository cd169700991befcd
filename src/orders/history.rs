//! Order history read models, paged from the orders' index sets in the journal (written with
//! each order's events, `actors::order::sets`): each shopper's orders, all orders and all
//! orders of one status, newest first; the orders owing a step; the dead letters. Nothing here
//! is held in memory, so a node with a million orders starts without reading them and pages
//! through any of them after a restart.

use crate::actors::Entity;
use crate::actors::order::{Order, OrderView, due_of, member, parse_member, sets};
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::OrderStatus;
use crate::domain::time::Timestamp;
use crate::persistence::{
    Append, Direction, IndexEntry, Journal, JournalError, StreamId, barrier, blocking, codec,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

type Key = (Timestamp, OrderId);

/// Which orders a history page lists.
#[derive(Debug, Clone, Copy)]
pub enum Listing<'a> {
    /// One shopper's.
    User(&'a UserId),
    /// Everyone's (admin).
    All,
    /// Everyone's in one status (admin).
    Status(OrderStatus),
}

impl Listing<'_> {
    fn set(self) -> String {
        match self {
            Listing::User(user) => sets::user(user),
            Listing::All => sets::ALL.to_owned(),
            Listing::Status(status) => sets::status(status),
        }
    }
}

/// A page position: the creation time and id of the last order shown.
pub fn encode_cursor((at, id): &Key) -> String {
    format!("{}_{}", at.millis(), id)
}

pub fn decode_cursor(raw: &str) -> Option<Key> {
    let (ms, id) = raw.split_once('_')?;
    Some((Timestamp(ms.parse().ok()?), OrderId::parse(id).ok()?))
}

/// One page of the `listing`'s orders, newest first, after `cursor`; and the cursor of the
/// next page when there is one.
pub async fn page(
    journal: &Arc<dyn Journal>,
    listing: Listing<'_>,
    cursor: Option<&Key>,
    limit: usize,
) -> Result<(Vec<OrderId>, Option<String>), JournalError> {
    let after = cursor.map(|(at, id)| member(*at, id));
    let members = members(
        journal,
        listing.set(),
        Direction::Descending,
        after,
        limit + 1,
    )
    .await?;
    let mut keys: Vec<Key> = members.iter().filter_map(|m| parse_member(m)).collect();
    let next = (keys.len() > limit).then(|| {
        keys.truncate(limit);
        keys.last().map(encode_cursor)
    });
    Ok((keys.into_iter().map(|(_, id)| id).collect(), next.flatten()))
}

/// The orders owing a step, earliest due first, at most `limit`; and how many there are.
pub async fn owing(
    journal: &Arc<dyn Journal>,
    limit: usize,
) -> Result<(Vec<Key>, usize), JournalError> {
    let j = journal.clone();
    let count = blocking(move || j.index_len(sets::OWING))
        .await
        .map_err(|_| JournalError::Closed)??;
    let members = members(
        journal,
        sets::OWING.into(),
        Direction::Ascending,
        None,
        limit,
    )
    .await?;
    Ok((
        members.iter().filter_map(|m| parse_member(m)).collect(),
        count,
    ))
}

/// Every order holding a dead letter, oldest first.
pub async fn dead(journal: &Arc<dyn Journal>) -> Result<Vec<OrderId>, JournalError> {
    let members = members(
        journal,
        sets::DEAD.into(),
        Direction::Ascending,
        None,
        usize::MAX,
    );
    Ok(members
        .await?
        .iter()
        .filter_map(|m| parse_member(m).map(|(_, id)| id))
        .collect())
}

async fn members(
    journal: &Arc<dyn Journal>,
    set: String,
    direction: Direction,
    after: Option<Vec<u8>>,
    limit: usize,
) -> Result<Vec<Vec<u8>>, JournalError> {
    let journal = journal.clone();
    blocking(move || journal.index_range(&set, direction, after.as_deref(), limit))
        .await
        .map_err(|_| JournalError::Closed)?
}

/// The index member that says the backfill below is done (in set `meta`).
const BACKFILLED: &[u8] = b"order.index.v1";

/// Writes the index entries and reminders of orders stored before orders had them (a data dir
/// of an earlier version), from their stored views; how many orders it wrote. It runs at each
/// start until it has finished once without a failed write, then marks itself done: writing
/// an order's entries again is harmless, so an interrupted run is simply run again.
pub async fn backfill(journal: &Arc<dyn Journal>) -> Result<usize, JournalError> {
    let j = journal.clone();
    let stored = blocking(move || {
        let marks = j.index_range("meta", Direction::Ascending, None, usize::MAX)?;
        if marks.iter().any(|m| m == BACKFILLED) {
            Ok(None)
        } else {
            j.views(Order::KIND).map(Some)
        }
    })
    .await
    .map_err(|_| JournalError::Closed)??;
    let Some(stored) = stored else {
        return Ok(0);
    };
    let failed = Arc::new(AtomicUsize::new(0));
    let mut written = 0;
    // The mark goes with a stream this node writes (a cluster fences every write by shard).
    let mut marker = None;
    for (raw, bytes) in stored {
        let (Ok(id), Ok(view)) = (
            OrderId::parse(&raw),
            codec::decode_snapshot::<OrderView>(&bytes),
        ) else {
            tracing::warn!(
                order_id = raw,
                "a stored order view does not decode; not indexed"
            );
            continue;
        };
        let stream = StreamId::new(Order::KIND, raw);
        if !journal.owns(&stream) {
            // Another node's shard (a cluster): its holder, starting too, backfills it.
            continue;
        }
        marker = Some(stream.clone());
        let entries = Order::index(&id, &view);
        let append = Append {
            stream: Some(stream),
            index: entries.into_iter().map(|e| (e, true)).collect(),
            reminder: Some(due_of(&view)),
            ..Append::default()
        };
        let failed = failed.clone();
        journal.submit(
            append,
            Box::new(move |r| {
                if r.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }),
        );
        written += 1;
    }
    barrier(journal.as_ref()).await?;
    if failed.load(Ordering::Relaxed) == 0 {
        let done = Append {
            stream: Some(marker.unwrap_or_else(|| StreamId::new(Order::KIND, "~backfill"))),
            index: vec![(IndexEntry::new("meta", BACKFILLED.to_vec()), true)],
            ..Append::default()
        };
        journal.submit(done, Box::new(|_| {}));
        barrier(journal.as_ref()).await?;
    }
    Ok(written)
}
