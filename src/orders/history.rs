//! Order history read models, paged from the orders' index sets in the journal (written with
//! each order's events, `actors::order::sets`): each shopper's orders, all orders and all
//! orders of one status, newest first; the orders owing a step; the dead letters. Nothing here
//! is held in memory, so a node with a million orders starts without reading them and pages
//! through any of them after a restart. All orders are the union of the status sets, which
//! partition them: a page of all orders merges a page of each.

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
    /// The index sets the listing is the union of.
    fn sets(self) -> Vec<String> {
        match self {
            Listing::User(user) => vec![sets::user(user)],
            Listing::All => OrderStatus::VISIBLE.map(sets::status).to_vec(),
            Listing::Status(status) => vec![sets::status(status)],
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
    let sets = listing.sets();
    let j = journal.clone();
    // Each set's next `limit + 1` members, merged: the newest `limit + 1` of the union are
    // among them. Read together, so an order changing status between two of the reads is
    // the only one that can be shown twice (deduplicated) or missed on this page.
    let members = blocking(move || -> Result<Vec<Vec<u8>>, JournalError> {
        let mut merged = Vec::new();
        for set in &sets {
            merged.extend(j.index_range(
                set,
                Direction::Descending,
                after.as_deref(),
                limit + 1,
            )?);
        }
        merged.sort_unstable_by(|a, b| b.cmp(a));
        merged.dedup();
        merged.truncate(limit + 1);
        Ok(merged)
    })
    .await
    .map_err(|_| JournalError::Closed)??;
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

/// Removes the members of [`sets::LEGACY_ALL`], which earlier versions wrote for every
/// visible order, in writes of the orders this node owns; how many it removed. It runs at
/// each start, and once the set is empty it costs one read. In a cluster each node removes
/// its own shards' members: the set is never read, so what is left is only space.
pub async fn forget_all_set(journal: &Arc<dyn Journal>) -> Result<usize, JournalError> {
    let (mut removed, mut after) = (0, None::<Vec<u8>>);
    loop {
        let chunk = members(
            journal,
            sets::LEGACY_ALL.into(),
            Direction::Ascending,
            after.take(),
            1024,
        )
        .await?;
        let Some(last) = chunk.last().cloned() else {
            return Ok(removed);
        };
        for m in chunk {
            let Some((_, id)) = parse_member(&m) else {
                continue;
            };
            let stream = StreamId::new(Order::KIND, id.to_string());
            if !journal.owns(&stream) {
                continue;
            }
            let append = Append {
                stream: Some(stream),
                index: vec![(IndexEntry::new(sets::LEGACY_ALL, m), false)],
                ..Append::default()
            };
            journal.submit(append, Box::new(|_| {}));
            removed += 1;
        }
        barrier(journal.as_ref()).await?;
        after = Some(last);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::memory::MemoryJournal;

    #[tokio::test]
    async fn the_retired_all_orders_set_is_emptied_at_start() {
        // Given a journal of an earlier version: 2,500 orders in the all-orders set
        let journal: Arc<dyn Journal> = Arc::new(MemoryJournal::default());
        let ids: Vec<OrderId> = (0..2_500)
            .map(|n| OrderId::parse(format!("o{n}")).unwrap())
            .collect();
        for (n, id) in ids.iter().enumerate() {
            let append = Append {
                stream: Some(StreamId::new(Order::KIND, id.to_string())),
                index: vec![(
                    IndexEntry::new(sets::LEGACY_ALL, member(Timestamp(n as i64), id)),
                    true,
                )],
                ..Append::default()
            };
            journal.submit(append, Box::new(|_| {}));
        }
        barrier(journal.as_ref()).await.unwrap();
        // When the orders start, twice
        let first = forget_all_set(&journal).await.unwrap();
        let second = forget_all_set(&journal).await.unwrap();
        // Then every entry is gone, and the second start had nothing to do
        assert_eq!((first, second), (2_500, 0));
        assert_eq!(journal.index_len(sets::LEGACY_ALL).unwrap(), 0);
    }
}
