//! What feeds the EventBus besides drops (`drops::live`): order status from the orders' durable
//! views on `order:{id}`, product availability from the SKUs' views on `product:{id}`, and the
//! message shapes of notifications (`user:{id}`, pushed by the orders saga when it notifies)
//! and chat (`chat:{room}`). Messages are built only when the topic has a subscriber; a view
//! written again without a change repeats its message, which the socket drops (see `ws`).

use crate::actors::sku::Sku;
use crate::actors::user::User;
use crate::actors::{AskError, Entities};
use crate::catalog::Catalog;
use crate::domain::ids::UserId;
use crate::domain::user::inbox::Notification;
use crate::domain::user::{UserCommand, UserError};
use crate::events::{EventBus, Message};
use crate::orders::Orders;
use serde_json::json;

/// Publishes order status and product availability (when a SKU's available units change)
/// from now on.
pub fn start(bus: &EventBus, orders: &Orders, skus: &Entities<Sku>, catalog: &Catalog) {
    let b = bus.clone();
    orders.on_view(move |id, view| {
        let topic = format!("order:{id}");
        if b.has_subscribers(&topic) {
            b.publish(&topic, order(id, view.status, view.updated_at));
        }
    });
    let (b, catalog) = (bus.clone(), catalog.clone());
    // The units each SKU last announced: a write that leaves them as they were (a drop hold
    // letting its written order go) announces nothing.
    let announced = dashmap::DashMap::new();
    skus.on_view(move |sku, view| {
        if announced.insert(sku.clone(), view.available) == Some(view.available) {
            return;
        }
        let Some(product) = catalog.index.owner_of(sku) else {
            return;
        };
        let topic = format!("product:{product}");
        if b.has_subscribers(&topic) {
            let message = json!({
                "type": "availability",
                "product_id": product,
                "sku_id": sku,
                "available": view.available,
            });
            b.publish(&topic, message.to_string().into());
        }
    });
}

/// `{"type": "order", "order_id", "status", "at"}`.
pub fn order(
    id: &crate::domain::ids::OrderId,
    status: crate::domain::order::OrderStatus,
    at: crate::domain::time::Timestamp,
) -> Message {
    json!({"type": "order", "order_id": id, "status": status.as_str(), "at": at.to_rfc3339()})
        .to_string()
        .into()
}

/// Puts `note` in `user`'s inbox and, once it is there, pushes it on their `user` topic (on
/// every node). An inbox keeps a notification's id once, so delivering again is harmless.
pub async fn notify_user(
    users: &Entities<User>,
    bus: &EventBus,
    user: &UserId,
    note: Notification,
) -> Result<(), AskError<UserError>> {
    let pushed = notification(&note);
    users.ask(user, UserCommand::Notify(note)).await?;
    bus.announce(&format!("user:{user}"), pushed);
    Ok(())
}

/// `{"type": "notification", "id", "kind", "text", "at"}`, and what it is about
/// (`order_id`, `room_id`, `drop_id`, `amount`, `currency`, `name`) where it applies: the
/// notification's own fields, with `at` in RFC 3339.
pub fn notification(n: &Notification) -> Message {
    let mut pushed = serde_json::to_value(n).unwrap_or_else(|_| json!({}));
    pushed["type"] = json!("notification");
    pushed["at"] = json!(n.at.to_rfc3339());
    pushed.to_string().into()
}
