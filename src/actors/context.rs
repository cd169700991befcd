//! [`EntityContext<E>`]: everything an entity actor uses besides its own state — the journal
//! it records to, the clock its rules read, its snapshot settings, its kind's counters and
//! where its views go. `Entities::start` builds one per kind and hands it to every activation.
//!
//! This is the seam where the storage changes: a node journals to sled, and a cluster node
//! gives each entity the journal of its shard (fenced by the shard's lease) here, while the
//! entity code stays the same.

use crate::actors::entity::Entity;
use crate::actors::registry::ViewSink;
use crate::actors::supervisor::KindStats;
use crate::domain::time::Clock;
use crate::persistence::Journal;
use std::sync::Arc;

/// How often an entity snapshots.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPolicy {
    /// Snapshot every N events, or every `weight` events when the state is larger.
    pub every: u64,
}

pub struct EntityContext<E: Entity> {
    pub journal: Arc<dyn Journal>,
    pub clock: Arc<dyn Clock>,
    pub snapshots: SnapshotPolicy,
    pub stats: Arc<KindStats>,
    /// Receives each view once it is durable.
    pub views: Arc<dyn ViewSink<E>>,
}

impl<E: Entity> Clone for EntityContext<E> {
    fn clone(&self) -> Self {
        Self {
            journal: self.journal.clone(),
            clock: self.clock.clone(),
            snapshots: self.snapshots,
            stats: self.stats.clone(),
            views: self.views.clone(),
        }
    }
}
