//! [`Routing`]: this node's picture of the cluster, for sending requests — who held each shard
//! and which nodes were up when last read. The keeper refreshes it every round (a third of
//! the lease TTL); a forward that meets a stale entry refreshes that shard at once. It is only
//! a hint: the owner's lease, checked by every append, decides who may write.

use crate::cluster::leases::Holder;
use crate::cluster::shards::Shard;
use std::collections::HashSet;
use std::sync::RwLock;

pub struct Routing {
    holders: RwLock<Vec<Option<Holder>>>,
    live: RwLock<Vec<String>>,
    /// Notified when a node went down or a process of a node was replaced since the last
    /// read: what it answered but had not finished (promised drop orders) is to be
    /// recovered by the owners of the SKUs holding them.
    pub lost: tokio::sync::Notify,
}

impl Routing {
    pub fn new(shards: u32) -> Self {
        Self {
            holders: RwLock::new(vec![None; shards as usize]),
            live: RwLock::new(Vec::new()),
            lost: tokio::sync::Notify::new(),
        }
    }

    /// Every shard's holder as just read, in shard order.
    pub fn set_holders(&self, holders: Vec<Option<Holder>>) {
        let processes = |held: &[Option<Holder>]| -> HashSet<String> {
            held.iter().flatten().map(|h| h.holder.clone()).collect()
        };
        let Ok(mut held) = self.holders.write() else {
            return;
        };
        let before = processes(&held);
        let after = processes(&holders);
        *held = holders;
        drop(held);
        // A process that held shards and holds none now: it left, died or was replaced.
        if before.difference(&after).next().is_some() {
            self.lost.notify_one();
        }
    }

    /// One shard's holder as just read.
    pub fn set_holder(&self, shard: Shard, holder: Option<Holder>) {
        if let Ok(mut held) = self.holders.write()
            && let Some(slot) = held.get_mut(shard.0 as usize)
        {
            *slot = holder;
        }
    }

    /// Who held the shard when last read.
    pub fn holder(&self, shard: Shard) -> Option<Holder> {
        self.holders.read().ok()?.get(shard.0 as usize)?.clone()
    }

    /// The nodes up when last read (their membership key had not expired). A node that
    /// appears or disappears is logged, for the operator reading one node's log: a node gone
    /// at `WARN` (its shards are taken over once their leases expire).
    pub fn set_live(&self, live: Vec<String>) {
        let Ok(mut up) = self.live.write() else {
            return;
        };
        let gone: Vec<&String> = up.iter().filter(|n| !live.contains(n)).collect();
        let went_down = !gone.is_empty();
        for node in gone {
            tracing::warn!(%node, "cluster node left the membership (stopped, drained, or no heartbeat within the lease TTL); its shards are taken over");
        }
        // Not at the first read (every node is new then).
        if !up.is_empty() {
            for node in live.iter().filter(|n| !up.contains(n)) {
                tracing::info!(%node, "cluster node up");
            }
        }
        *up = live;
        drop(up);
        if went_down {
            self.lost.notify_one();
        }
    }

    pub fn is_live(&self, node: &str) -> bool {
        self.live
            .read()
            .is_ok_and(|up| up.iter().any(|n| n == node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(node: &str, epoch: u64) -> Option<Holder> {
        Some(Holder {
            node: node.into(),
            holder: format!("{node}/1"),
            epoch,
        })
    }

    #[test]
    fn given_a_round_then_a_refresh_when_read_then_the_newest_entry_answers() {
        let routing = Routing::new(4);
        routing.set_holders(vec![held_by("n1", 1), None, held_by("n2", 3), None]);
        routing.set_holder(Shard(2), held_by("n3", 4));
        routing.set_holder(Shard(9), held_by("n3", 1)); // outside the map: ignored
        assert_eq!(routing.holder(Shard(0)), held_by("n1", 1));
        assert_eq!(routing.holder(Shard(1)), None);
        assert_eq!(routing.holder(Shard(2)), held_by("n3", 4));
        assert_eq!(routing.holder(Shard(9)), None);
    }

    #[tokio::test]
    async fn given_a_process_gone_or_a_node_down_when_read_then_lost_is_notified() {
        let routing = Routing::new(2);
        routing.set_live(vec!["n1".into(), "n2".into()]);
        routing.set_holders(vec![held_by("n1", 1), held_by("n2", 1)]);
        let notified = || {
            let mut lost = std::pin::pin!(routing.lost.notified());
            lost.as_mut().enable()
        };
        assert!(!notified(), "nodes coming up lose nothing");
        // n2's shard changes hands to n1's process: n2's process is gone.
        routing.set_holders(vec![held_by("n1", 1), held_by("n1", 2)]);
        assert!(notified());
        routing.set_live(vec!["n1".into(), "n2".into()]);
        assert!(!notified());
        routing.set_live(vec!["n1".into()]);
        assert!(notified());
    }
}
