//! Cluster mode: several nodes share one system of record, Redis, which also coordinates them
//! (`ARCHITECTURE.md`, "Cluster"). Each entity belongs to a [`shards::Shard`]; a node serves a
//! shard only while it holds the shard's lease ([`leases`]), and every journal append is
//! fenced by that lease (`persistence::redis_journal`), so two nodes can never both
//! acknowledge writes of one entity.

pub mod config;
pub mod forward;
pub mod handover;
pub mod keeper;
pub mod leases;
pub mod member;
pub mod peers;
pub mod region;
pub mod relay;
pub mod routing;
pub mod shards;
pub mod views;
