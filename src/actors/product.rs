//! The product entity: one actor per product owns its record; its view (the product record) is
//! what the catalog read model indexes. Rules are in `domain::catalog`.

use crate::actors::entity::Entity;
use crate::domain::catalog::{
    self, CatalogError, Product, ProductCommand, ProductEvent, ProductState,
};
use crate::domain::ids::ProductId;
use crate::domain::time::Timestamp;

pub struct ProductEntity;

impl Entity for ProductEntity {
    const KIND: &'static str = "product";
    type Id = ProductId;
    type State = ProductState;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Rejection = CatalogError;
    /// The product; `None` only after [`ProductCommand::Abandon`].
    type Reply = Option<Product>;
    type View = Product;

    fn decide(
        s: &ProductState,
        c: &ProductCommand,
        now: Timestamp,
    ) -> Result<Vec<ProductEvent>, CatalogError> {
        catalog::decide(s, c, now)
    }

    fn apply(s: &mut ProductState, e: &ProductEvent) {
        catalog::apply(s, e);
    }

    fn reply(_: &ProductId, s: &ProductState, _: &ProductCommand) -> Option<Product> {
        s.product.clone()
    }

    fn view(s: &ProductState) -> Option<Product> {
        s.product.clone()
    }
}
