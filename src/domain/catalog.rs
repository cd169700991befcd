//! A product of the catalog: name, description, category and its SKUs (option combinations with
//! a price each). Stock is not here: each SKU's stock is its own entity (`inventory`).

use crate::domain::ids::SkuId;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
pub const MAX_CATEGORY_CHARS: usize = 50;
pub const MAX_SKUS: usize = 100;
pub const MAX_OPTIONS: usize = 8;
pub const MAX_OPTION_CHARS: usize = 40;
pub const MAX_PRICE: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuSpec {
    pub sku_id: SkuId,
    pub options: BTreeMap<String, String>,
    /// Minor units of the store currency.
    pub price: i64,
}

/// A product as created or as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub name: String,
    pub description: String,
    pub category: String,
    pub thumbnail: Option<String>,
    pub skus: Vec<SkuSpec>,
    #[serde(default)]
    pub created_at: Timestamp,
    #[serde(default)]
    pub updated_at: Timestamp,
}

impl Product {
    /// The lowest SKU price.
    pub fn price_from(&self) -> i64 {
        self.skus.iter().map(|s| s.price).min().unwrap_or(0)
    }
}

/// A partial change of a product; SKUs are matched by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub thumbnail: Option<String>,
    /// Removes the thumbnail (`thumbnail` is then `None`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_thumbnail: bool,
    pub skus: Vec<SkuPatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuPatch {
    pub sku_id: SkuId,
    pub price: Option<i64>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductState {
    pub product: Option<Product>,
    /// Given up before it was created ([`ProductCommand::Abandon`]): never created now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abandoned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProductCommand {
    Create(Product),
    Update(ProductPatch),
    Get,
    /// Gives up a product that was not created, for good. A creation binds its SKUs first and
    /// then creates the product; a SKU bound to a product that does not exist is taken over by
    /// the next creation that names it (the first one failed half-way, or is still under way).
    /// The taker abandons the owner first, so the two cannot both succeed: either the owner
    /// was created (`AlreadyExists`: the SKU is taken) or its creation will be refused.
    Abandon,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductEvent {
    Created { product: Product, at: Timestamp },
    Updated { patch: ProductPatch, at: Timestamp },
    Abandoned { at: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CatalogError {
    #[error("no such product")]
    NotFound,
    #[error("the product already exists")]
    AlreadyExists,
    #[error("{0}")]
    Invalid(String),
    #[error("SKU {0} belongs to another product")]
    SkuTaken(SkuId),
    #[error("the product was given up: another product took one of its SKUs")]
    Abandoned,
}

/// Normalises a category: its comparison form ([`crate::domain::text::fold`]).
pub fn normalise_category(raw: &str) -> String {
    crate::domain::text::fold(raw)
}

fn check_text(field: &str, v: &str, min: usize, max: usize) -> Result<(), CatalogError> {
    let fits = if field == "description" {
        (min..=max).contains(&v.trim().chars().count())
    } else {
        crate::domain::text::is_line(v, min, max)
    };
    if !fits {
        return Err(CatalogError::Invalid(format!(
            "{field} must be {min} to {max} characters"
        )));
    }
    Ok(())
}

fn check_price(price: i64) -> Result<(), CatalogError> {
    if !(0..=MAX_PRICE).contains(&price) {
        return Err(CatalogError::Invalid(format!(
            "price must be 0 to {MAX_PRICE} (minor units)"
        )));
    }
    Ok(())
}

fn check_options(options: &BTreeMap<String, String>) -> Result<(), CatalogError> {
    if options.len() > MAX_OPTIONS {
        return Err(CatalogError::Invalid(format!(
            "at most {MAX_OPTIONS} options per SKU"
        )));
    }
    for (k, v) in options {
        check_text("option name", k, 1, MAX_OPTION_CHARS)?;
        check_text("option value", v, 1, MAX_OPTION_CHARS)?;
    }
    Ok(())
}

/// Every rule a product must satisfy.
pub fn validate(p: &Product) -> Result<(), CatalogError> {
    validate_change(None, p)
}

/// The rules of text, checked of what `before` (the stored product, for an update) did not
/// already hold: a name stored before a rule was tightened (one of combining marks only) does
/// not refuse every other edit, while a new or changed one is checked in full.
fn validate_change(before: Option<&Product>, p: &Product) -> Result<(), CatalogError> {
    let changed = |pick: fn(&Product) -> &str| before.is_none_or(|b| pick(b) != pick(p));
    if changed(|p| &p.name) {
        check_text("name", &p.name, 1, MAX_NAME_CHARS)?;
    }
    if changed(|p| &p.description) {
        check_text("description", &p.description, 0, MAX_DESCRIPTION_CHARS)?;
    }
    if changed(|p| &p.category) {
        check_text("category", &p.category, 1, MAX_CATEGORY_CHARS)?;
    }
    if let Some(t) = &p.thumbnail
        && before.is_none_or(|b| b.thumbnail != p.thumbnail)
    {
        check_text("thumbnail", t, 1, 500)?;
    }
    if p.skus.is_empty() || p.skus.len() > MAX_SKUS {
        return Err(CatalogError::Invalid(format!(
            "a product has 1 to {MAX_SKUS} SKUs"
        )));
    }
    let mut seen = BTreeSet::new();
    for sku in &p.skus {
        if !seen.insert(&sku.sku_id) {
            return Err(CatalogError::Invalid(format!(
                "SKU {} appears twice",
                sku.sku_id
            )));
        }
        check_price(sku.price)?;
        let stored = before.and_then(|b| b.skus.iter().find(|s| s.sku_id == sku.sku_id));
        if stored.is_none_or(|s| s.options != sku.options) {
            check_options(&sku.options)?;
        }
    }
    Ok(())
}

pub fn decide(
    s: &ProductState,
    cmd: &ProductCommand,
    now: Timestamp,
) -> Result<Vec<ProductEvent>, CatalogError> {
    match (cmd, &s.product) {
        (ProductCommand::Create(_) | ProductCommand::Abandon, Some(_)) => {
            Err(CatalogError::AlreadyExists)
        }
        (ProductCommand::Create(_), None) if s.abandoned => Err(CatalogError::Abandoned),
        (ProductCommand::Abandon, None) if s.abandoned => Ok(vec![]),
        (ProductCommand::Abandon, None) => Ok(vec![ProductEvent::Abandoned { at: now }]),
        (ProductCommand::Create(p), None) => {
            validate(p)?;
            Ok(vec![ProductEvent::Created {
                product: p.clone(),
                at: now,
            }])
        }
        (ProductCommand::Update(_) | ProductCommand::Get, None) => Err(CatalogError::NotFound),
        (ProductCommand::Update(patch), Some(current)) => {
            let mut next = current.clone();
            patch_product(&mut next, patch);
            let mut seen = BTreeSet::new();
            for sku in &patch.skus {
                if !seen.insert(&sku.sku_id) {
                    return Err(CatalogError::Invalid(format!(
                        "SKU {} appears twice",
                        sku.sku_id
                    )));
                }
                if !current.skus.iter().any(|s| s.sku_id == sku.sku_id) {
                    return Err(CatalogError::Invalid(format!(
                        "the product has no SKU {}",
                        sku.sku_id
                    )));
                }
            }
            validate_change(Some(current), &next)?;
            Ok(vec![ProductEvent::Updated {
                patch: patch.clone(),
                at: now,
            }])
        }
        (ProductCommand::Get, Some(_)) => Ok(vec![]),
    }
}

fn patch_product(p: &mut Product, patch: &ProductPatch) {
    if let Some(v) = &patch.name {
        p.name = v.trim().to_string();
    }
    if let Some(v) = &patch.description {
        p.description = v.clone();
    }
    if let Some(v) = &patch.category {
        p.category = normalise_category(v);
    }
    if let Some(v) = &patch.thumbnail {
        p.thumbnail = Some(v.clone());
    }
    if patch.clear_thumbnail {
        p.thumbnail = None;
    }
    for change in &patch.skus {
        if let Some(sku) = p.skus.iter_mut().find(|s| s.sku_id == change.sku_id) {
            if let Some(price) = change.price {
                sku.price = price;
            }
            if let Some(options) = &change.options {
                sku.options = options.clone();
            }
        }
    }
}

pub fn apply(s: &mut ProductState, e: &ProductEvent) {
    match e {
        ProductEvent::Created { product, at } => {
            let mut p = product.clone();
            p.name = p.name.trim().to_string();
            p.category = normalise_category(&p.category);
            p.created_at = *at;
            p.updated_at = *at;
            s.product = Some(p);
        }
        ProductEvent::Updated { patch, at } => {
            if let Some(p) = s.product.as_mut() {
                patch_product(p, patch);
                p.updated_at = *at;
            }
        }
        ProductEvent::Abandoned { .. } => s.abandoned = true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(5_000);

    fn sku(id: &str, price: i64) -> SkuSpec {
        SkuSpec {
            sku_id: SkuId::parse(id).unwrap(),
            options: BTreeMap::from([("size".into(), "M".into())]),
            price,
        }
    }

    fn tee() -> Product {
        Product {
            name: " Basic Tee ".into(),
            description: "cotton".into(),
            category: " Tops ".into(),
            thumbnail: None,
            skus: vec![sku("tee-m", 12_900), sku("tee-l", 13_900)],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn given(cmds: &[ProductCommand]) -> ProductState {
        let mut s = ProductState::default();
        for c in cmds {
            for e in decide(&s, c, NOW).unwrap() {
                apply(&mut s, &e);
            }
        }
        s
    }

    #[test]
    fn create_normalises_and_stamps() {
        let s = given(&[ProductCommand::Create(tee())]);
        let p = s.product.unwrap();
        assert_eq!(
            (p.name.as_str(), p.category.as_str()),
            ("Basic Tee", "tops")
        );
        assert_eq!(p.created_at, NOW);
        assert_eq!(p.price_from(), 12_900);
    }

    #[test]
    fn invalid_products_are_refused() {
        let s = ProductState::default();
        let mut no_skus = tee();
        no_skus.skus.clear();
        let mut dup = tee();
        dup.skus.push(sku("tee-m", 1));
        let mut negative = tee();
        negative.skus[0].price = -1;
        let mut nameless = tee();
        nameless.name = "  ".into();
        for bad in [no_skus, dup, negative, nameless] {
            let r = decide(&s, &ProductCommand::Create(bad), NOW);
            assert!(matches!(r, Err(CatalogError::Invalid(_))), "{r:?}");
        }
    }

    #[test]
    fn update_changes_only_what_it_names() {
        let s = given(&[ProductCommand::Create(tee())]);
        let patch = ProductPatch {
            name: Some("Better Tee".into()),
            skus: vec![SkuPatch {
                sku_id: SkuId::parse("tee-l").unwrap(),
                price: Some(9_900),
                options: None,
            }],
            ..ProductPatch::default()
        };
        let later = Timestamp(9_000);
        let mut s2 = s.clone();
        for e in decide(&s, &ProductCommand::Update(patch), later).unwrap() {
            apply(&mut s2, &e);
        }
        let p = s2.product.unwrap();
        assert_eq!(p.name, "Better Tee");
        assert_eq!(p.description, "cotton");
        assert_eq!(p.price_from(), 9_900);
        assert_eq!((p.created_at, p.updated_at), (NOW, later));
    }

    #[test]
    fn a_thumbnail_is_set_and_then_removed() {
        // Given a product given a thumbnail
        let mut s = given(&[ProductCommand::Create(tee())]);
        let set = ProductPatch {
            thumbnail: Some("https://cdn.example.com/tee.jpg".into()),
            ..ProductPatch::default()
        };
        for e in decide(&s, &ProductCommand::Update(set), NOW).unwrap() {
            apply(&mut s, &e);
        }
        assert!(s.product.as_ref().unwrap().thumbnail.is_some());
        // When a patch removes it
        let clear = ProductPatch {
            clear_thumbnail: true,
            ..ProductPatch::default()
        };
        for e in decide(&s, &ProductCommand::Update(clear), NOW).unwrap() {
            apply(&mut s, &e);
        }
        // Then it has none, and the rest is as it was
        let p = s.product.unwrap();
        assert_eq!((p.thumbnail, p.name.as_str()), (None, "Basic Tee"));
    }

    #[test]
    fn a_name_stored_before_a_rule_tightened_does_not_refuse_other_edits() {
        // Given a product stored with a name of a combining mark only (refused since)
        let mut s = given(&[ProductCommand::Create(tee())]);
        s.product.as_mut().unwrap().name = "\u{301}".into();
        let price = |price| ProductPatch {
            skus: vec![SkuPatch {
                sku_id: SkuId::parse("tee-l").unwrap(),
                price: Some(price),
                options: None,
            }],
            ..ProductPatch::default()
        };
        // When its price is changed, then that is accepted
        assert!(decide(&s, &ProductCommand::Update(price(9_900)), NOW).is_ok());
        // But a new name is checked in full, and a negative price still refused
        let rename = ProductPatch {
            name: Some("\u{300}".into()),
            ..ProductPatch::default()
        };
        // And so is a thumbnail given where there was none, even an empty one
        let thumbnail = ProductPatch {
            thumbnail: Some(String::new()),
            ..ProductPatch::default()
        };
        for bad in [rename, price(-1), thumbnail] {
            let r = decide(&s, &ProductCommand::Update(bad), NOW);
            assert!(matches!(r, Err(CatalogError::Invalid(_))), "{r:?}");
        }
    }

    #[test]
    fn an_abandoned_product_is_never_created() {
        // Given a product whose SKU another creation took over before it was created
        let s = given(&[ProductCommand::Abandon]);
        // When its own creation comes
        let r = decide(&s, &ProductCommand::Create(tee()), NOW);
        // Then it is refused, and abandoning again changes nothing
        assert_eq!(r, Err(CatalogError::Abandoned));
        assert_eq!(decide(&s, &ProductCommand::Abandon, NOW), Ok(vec![]));
        // And a product created first cannot be abandoned: its SKUs are taken
        let created = given(&[ProductCommand::Create(tee())]);
        assert_eq!(
            decide(&created, &ProductCommand::Abandon, NOW),
            Err(CatalogError::AlreadyExists)
        );
    }

    #[test]
    fn unknown_products_and_skus_are_refused() {
        let none = ProductState::default();
        let patch = ProductPatch::default();
        assert_eq!(
            decide(&none, &ProductCommand::Update(patch), NOW),
            Err(CatalogError::NotFound)
        );
        let s = given(&[ProductCommand::Create(tee())]);
        let ghost = ProductPatch {
            skus: vec![SkuPatch {
                sku_id: SkuId::parse("ghost").unwrap(),
                price: Some(1),
                options: None,
            }],
            ..ProductPatch::default()
        };
        assert!(matches!(
            decide(&s, &ProductCommand::Update(ghost), NOW),
            Err(CatalogError::Invalid(_))
        ));
        let twice = |price| SkuPatch {
            sku_id: SkuId::parse("tee-m").unwrap(),
            price: Some(price),
            options: None,
        };
        let twice = ProductPatch {
            skus: vec![twice(5), twice(7)],
            ..ProductPatch::default()
        };
        assert!(matches!(
            decide(&s, &ProductCommand::Update(twice), NOW),
            Err(CatalogError::Invalid(_))
        ));
        assert_eq!(
            decide(&s, &ProductCommand::Create(tee()), NOW),
            Err(CatalogError::AlreadyExists)
        );
    }
}
