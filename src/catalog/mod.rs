//! The catalog: products (one entity each) whose SKUs are bound to them through the SKU
//! entities, and [`index::CatalogIndex`], the in-memory read model every catalog read uses.
//! [`Catalog`] holds the flows that span several entities (creating a product binds its SKUs,
//! then records the product, then sets the initial stock).

pub mod demo;
pub mod index;
pub mod words;

use crate::actors::product::ProductEntity;
use crate::actors::sku::Sku;
use crate::actors::{AskError, Entities, Runtime, RuntimeError};
use crate::catalog::index::CatalogIndex;
use crate::domain::catalog::{self, CatalogError, Product, ProductCommand, ProductPatch, SkuSpec};
use crate::domain::ids::{ProductId, SkuId};
use crate::domain::inventory::{SkuCommand, SkuError, StockView};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a catalog change failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogFailure {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl<R: Into<CatalogFailure>> From<AskError<R>> for CatalogFailure {
    fn from(e: AskError<R>) -> Self {
        e.into_failure()
    }
}

impl From<SkuError> for CatalogFailure {
    fn from(e: SkuError) -> Self {
        CatalogError::Invalid(e.to_string()).into()
    }
}

/// A SKU of a new product.
#[derive(Debug, Clone)]
pub struct NewSku {
    pub sku_id: Option<SkuId>,
    pub options: BTreeMap<String, String>,
    pub price: i64,
    pub stock: u64,
}

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub category: String,
    pub thumbnail: Option<String>,
    pub skus: Vec<NewSku>,
}

/// A product with its SKUs' current stock.
#[derive(Debug, Clone)]
pub struct Detail {
    pub product_id: ProductId,
    pub product: Arc<Product>,
    pub stock: Vec<StockView>,
    pub sales: u64,
}

#[derive(Clone)]
pub struct Catalog {
    pub products: Entities<ProductEntity>,
    pub skus: Entities<Sku>,
    pub index: Arc<CatalogIndex>,
}

impl Catalog {
    /// Starts the product kind and builds the index from the durable views.
    pub async fn start(rt: Runtime, skus: Entities<Sku>) -> anyhow::Result<Self> {
        let products = Entities::<ProductEntity>::start(rt).await?;
        let index = Arc::new(CatalogIndex::new());
        for (id, product) in products.views() {
            index.upsert(&id, product);
        }
        for (sku, view) in skus.views() {
            index.record_stock(&sku, &view);
        }
        let i = index.clone();
        products.on_view(move |id, product| i.upsert(id, product.clone()));
        let i = index.clone();
        skus.on_view(move |sku, view| i.record_stock(sku, view));
        Ok(Self {
            products,
            skus,
            index,
        })
    }

    pub fn detail(&self, id: &ProductId) -> Option<Detail> {
        let summary = self.index.get(id)?;
        let stock = summary
            .product
            .skus
            .iter()
            .map(|s| self.skus.view(&s.sku_id).unwrap_or_default())
            .collect();
        Some(Detail {
            product_id: summary.product_id,
            product: summary.product,
            stock,
            sales: summary.sales,
        })
    }

    /// Whether any SKU of the product has stock available.
    pub fn in_stock(&self, product: &Product) -> bool {
        product
            .skus
            .iter()
            .any(|s| self.skus.view(&s.sku_id).is_some_and(|v| v.available > 0))
    }

    /// Binds the SKUs, records the product, sets the initial stock.
    pub async fn create(
        &self,
        new: NewProduct,
        now_ms: i64,
    ) -> Result<(ProductId, Product), CatalogFailure> {
        let product_id =
            ProductId::parse(format!("p{:012x}{:016x}", now_ms, rand::random::<u64>()))
                .expect("hex is a valid id");
        let skus: Vec<(SkuSpec, u64)> = new
            .skus
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let sku_id = s.sku_id.unwrap_or_else(|| {
                    SkuId::parse(format!("{product_id}-{}", i + 1)).expect("valid id")
                });
                (
                    SkuSpec {
                        sku_id,
                        options: s.options,
                        price: s.price,
                    },
                    s.stock,
                )
            })
            .collect();
        let product = Product {
            name: new.name,
            description: new.description,
            category: new.category,
            thumbnail: new.thumbnail,
            skus: skus.iter().map(|(spec, _)| spec.clone()).collect(),
            created_at: Default::default(),
            updated_at: Default::default(),
        };
        catalog::validate(&product)?;
        // In id order: two creations naming the same SKUs meet at the first of them, so one
        // takes them all (in any order, each could take one of the other's and both fail).
        let mut binding: Vec<&SkuId> = skus.iter().map(|(spec, _)| &spec.sku_id).collect();
        binding.sort();
        for sku in binding {
            self.attach(sku, &product_id).await?;
        }
        let created = match self
            .products
            .ask(&product_id, ProductCommand::Create(product))
            .await
        {
            Ok(created) => created.ok_or(CatalogError::NotFound)?,
            // A concurrent creation took one of the SKUs meanwhile: name it.
            Err(AskError::Rejected(CatalogError::Abandoned)) => {
                for (spec, _) in &skus {
                    let ours = SkuCommand::Attach {
                        product_id: product_id.clone(),
                        replacing: None,
                    };
                    if let Err(AskError::Rejected(SkuError::AttachedElsewhere(_))) =
                        self.skus.ask(&spec.sku_id, ours).await
                    {
                        return Err(CatalogError::SkuTaken(spec.sku_id.clone()).into());
                    }
                }
                return Err(CatalogError::Abandoned.into());
            }
            Err(e) => return Err(e.into()),
        };
        for (spec, stock) in skus {
            let set = SkuCommand::SetStock { available: stock };
            self.skus.ask(&spec.sku_id, set).await?;
        }
        Ok((product_id, created))
    }

    /// Binds a SKU to a product. A SKU bound to a product that was not created (its creation
    /// failed half-way, or is under way) is taken over once that product is abandoned
    /// ([`ProductCommand::Abandon`]), so of two creations naming one SKU at most one succeeds.
    async fn attach(&self, sku: &SkuId, product_id: &ProductId) -> Result<(), CatalogFailure> {
        let attach = |replacing| SkuCommand::Attach {
            product_id: product_id.clone(),
            replacing,
        };
        let taken = || CatalogFailure::from(CatalogError::SkuTaken(sku.clone()));
        match self.skus.ask(sku, attach(None)).await {
            Ok(_) => Ok(()),
            Err(AskError::Rejected(SkuError::AttachedElsewhere(owner))) => {
                if self.products.view(&owner).is_some() {
                    return Err(taken());
                }
                match self.products.ask(&owner, ProductCommand::Abandon).await {
                    Ok(_) => {}
                    Err(AskError::Rejected(CatalogError::AlreadyExists)) => return Err(taken()),
                    Err(e) => return Err(e.into()),
                }
                match self.skus.ask(sku, attach(Some(owner))).await {
                    Ok(_) => Ok(()),
                    Err(AskError::Rejected(SkuError::AttachedElsewhere(_))) => Err(taken()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update(
        &self,
        id: &ProductId,
        patch: ProductPatch,
    ) -> Result<Product, CatalogFailure> {
        let updated = self.products.ask(id, ProductCommand::Update(patch)).await?;
        Ok(updated.ok_or(CatalogError::NotFound)?)
    }
}
