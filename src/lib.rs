//! Emporium: an actor-based commerce engine.
//!
//! The layout, from the inside out:
//! - [`domain`]: pure rules (ids, time, and per aggregate `decide`/`apply`), no IO.
//! - [`persistence`]: the journal of events, snapshots and reminders; sled with group commit.
//! - [`actors`]: the entity runtime (the `Entities` handle, the registry of active entities,
//!   the context an actor runs with, the actor shell) and the entity kinds, each a thin
//!   binding of its domain rules.
//! - [`http`]: the axum edge: router, `AppState` (the node and the edge's settings),
//!   problem+json errors with every mapping in one place, extractors, one file per resource.
//! - [`auth`]: passwords, tokens, personal-data sealing, secrets, revocation, account flows.
//! - [`catalog`], [`shopping`], [`orders`], [`drops`], [`chat`]: the services over the entities —
//!   the catalog index, carts/coupons/wishlists, orders (the order book behind one ask,
//!   placement, the saga and its dispatcher, promised drop orders, history), flash-sale drops,
//!   chat rooms.
//! - [`events`]: the EventBus of live topics, which the WebSocket edge (`http::ws`) serves.
//! - [`integrations`]: adapters to the outside (mail, payment gateway, carrier) over HTTP;
//!   [`sandbox`]: the sandbox gateway and carrier they talk to in dev mode and tests.
//! - [`cluster`]: shards, leases with fencing and membership in Redis (the cluster's
//!   coordinator; its journal is `persistence::redis_journal`).
//! - [`config`], [`telemetry`], [`node`], [`startup`]: settings, logs and metrics, the `Node`
//!   (storage + runtime + services) and the `Application` that serves it over HTTP;
//!   [`demo`]: the demo shop of `serve --demo`; [`process`]: what the process asks of the OS
//!   at start-up (its open-file limit); [`limits`]: per-key rate limits (auth by IP, chat by
//!   user), in Redis in a cluster.
//!
//! No file is over 600 lines and no two files import each other (`scripts/check-layout.py`).

pub mod actors;
pub mod auth;
pub mod catalog;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod domain;
pub mod drops;
pub mod events;
pub mod http;
pub mod integrations;
pub mod limits;
pub mod node;
pub mod orders;
pub mod persistence;
pub mod process;
pub mod sandbox;
pub mod shopping;
pub mod startup;
pub mod telemetry;
