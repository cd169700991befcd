//! [`AppState`]: what every handler reaches — the node (every service and entity kind) and
//! the edge's own settings. Handlers read node services straight through it
//! (`state.orders`), the way they would read fields of the node.

use crate::limits::RateLimit;
use crate::node::Node;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// One `Arc`: axum clones the state for every extractor of every request, so a clone must be
/// a single reference count, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The node and the settings only the edge uses.
pub struct Services {
    /// The engine; shared with the application, which closes it at shutdown.
    pub node: Arc<Node>,
    /// Keys of the signed callbacks: payment webhooks and carrier progress.
    pub webhook_secret: Arc<[u8]>,
    pub carrier_secret: Arc<[u8]>,
    /// The store currency (ISO 4217), shown beside every amount.
    pub currency: Arc<str>,
    /// The auth routes' limit per client IP.
    pub limits: RateLimit<std::net::IpAddr>,
    pub dev_mode: bool,
    /// Set once the node serves; cleared when shutdown begins.
    pub ready: Arc<AtomicBool>,
    pub metrics: PrometheusHandle,
}

/// The node's services and kinds (`orders`, `skus`, `accounts`, `bus`, `shutdown`, ...) read
/// as the state's own.
impl std::ops::Deref for Services {
    type Target = Node;

    fn deref(&self) -> &Node {
        &self.node
    }
}
