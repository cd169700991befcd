//! A user's wishlist: the products they keep an eye on, each once, at most [`MAX_WISHLIST`].
//! A sub-aggregate of the user: its own rules and events, which the user records as its own.

use crate::domain::ids::ProductId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Products one wishlist holds at most.
pub const MAX_WISHLIST: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Wishlist {
    products: BTreeSet<ProductId>,
}

impl Wishlist {
    pub fn contains(&self, product_id: &ProductId) -> bool {
        self.products.contains(product_id)
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// The products, in id order.
    pub fn products(&self) -> impl Iterator<Item = &ProductId> {
        self.products.iter()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WishlistCommand {
    /// Idempotent: a product already there is a replay.
    Add(ProductId),
    /// Idempotent: a product not there is a replay.
    Remove(ProductId),
}

/// Stored in the user's journal as the user's events (`{"type": "wishlist_added", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WishlistEvent {
    WishlistAdded { product_id: ProductId },
    WishlistRemoved { product_id: ProductId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WishlistError {
    #[error("a wishlist holds at most {MAX_WISHLIST} products")]
    Full,
}

pub fn decide(w: &Wishlist, cmd: &WishlistCommand) -> Result<Vec<WishlistEvent>, WishlistError> {
    match cmd {
        WishlistCommand::Add(product_id) => {
            if w.contains(product_id) {
                return Ok(vec![]);
            }
            if w.len() >= MAX_WISHLIST {
                return Err(WishlistError::Full);
            }
            Ok(vec![WishlistEvent::WishlistAdded {
                product_id: product_id.clone(),
            }])
        }
        WishlistCommand::Remove(product_id) => Ok(if w.contains(product_id) {
            vec![WishlistEvent::WishlistRemoved {
                product_id: product_id.clone(),
            }]
        } else {
            vec![]
        }),
    }
}

pub fn apply(w: &mut Wishlist, event: &WishlistEvent) {
    match event {
        WishlistEvent::WishlistAdded { product_id } => {
            w.products.insert(product_id.clone());
        }
        WishlistEvent::WishlistRemoved { product_id } => {
            w.products.remove(product_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(w: &mut Wishlist, cmd: WishlistCommand) -> Result<usize, WishlistError> {
        let events = decide(w, &cmd)?;
        events.iter().for_each(|e| apply(w, e));
        Ok(events.len())
    }

    #[test]
    fn the_wishlist_is_a_set() {
        let p = ProductId::parse("p1").unwrap();
        let mut w = Wishlist::default();
        assert_eq!(run(&mut w, WishlistCommand::Add(p.clone())), Ok(1));
        assert_eq!(run(&mut w, WishlistCommand::Add(p.clone())), Ok(0));
        assert_eq!(w.len(), 1);
        assert_eq!(run(&mut w, WishlistCommand::Remove(p.clone())), Ok(1));
        assert_eq!(run(&mut w, WishlistCommand::Remove(p)), Ok(0));
        assert!(w.is_empty());
    }

    #[test]
    fn a_full_wishlist_refuses_a_new_product() {
        let mut w = Wishlist::default();
        for i in 0..MAX_WISHLIST {
            let p = ProductId::parse(format!("p{i}")).unwrap();
            run(&mut w, WishlistCommand::Add(p)).unwrap();
        }
        let one_more = WishlistCommand::Add(ProductId::parse("p-new").unwrap());
        assert_eq!(decide(&w, &one_more), Err(WishlistError::Full));
        let again = WishlistCommand::Add(ProductId::parse("p0").unwrap());
        assert_eq!(
            decide(&w, &again),
            Ok(vec![]),
            "one already there is a replay"
        );
    }
}
