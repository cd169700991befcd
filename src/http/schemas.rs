//! Shapes that exist only in the OpenAPI document: request bodies the handlers read into domain
//! types (which know nothing of OpenAPI), described with the rules those types enforce. Each
//! names the type whose rules it states; never deserialized.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema};
use utoipa::{PartialSchema, ToSchema};

fn line(max: usize) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(crate::http::openapi::LINE.as_str()))
        .build()
}

/// A SKU's options (`domain::catalog`): at most 8, names and values one line of 1 to 40
/// characters.
pub struct SkuOptions;

impl PartialSchema for SkuOptions {
    fn schema() -> RefOr<Schema> {
        let object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(line(40)))
            .additional_properties(Some(schema::AdditionalProperties::RefOr(RefOr::T(
                Schema::Object(line(40)),
            ))))
            .max_properties(Some(8))
            .examples([serde_json::json!({"color": "red", "size": "M"})])
            .build();
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for SkuOptions {}

/// A shipping address (`domain::order::ShippingAddress`): each field one line: no control
/// characters, not only spaces.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressBody {
    #[schema(min_length = 1, max_length = 100, format = "line")]
    pub name: String,
    #[schema(min_length = 1, max_length = 30, format = "line")]
    pub phone: String,
    #[schema(min_length = 1, max_length = 200, format = "line")]
    pub address: String,
    #[schema(min_length = 1, max_length = 20, format = "line")]
    pub postal_code: Option<String>,
}

/// A role (`domain::role::Role`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Customer,
    Admin,
    Operator,
}

/// What a coupon takes off (`domain::pricing::DiscountKind`): `percent` (1 to 100) or
/// `fixed` (minor units).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscountKindName {
    Percent,
    Fixed,
}

/// Where a coupon applies (`domain::pricing::Scope`).
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScopeBody {
    /// The whole order.
    Order,
    /// The lines of one category.
    Category {
        #[schema(min_length = 1, max_length = 50, format = "line")]
        category: String,
    },
    /// The lines of one product.
    Product {
        #[schema(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
        product_id: String,
    },
}

/// A stock change (`http::skus::StockChange`): exactly one of a new level (`available`, 0 to
/// 10^12) or a change (`delta`, at most 10^12 either way), nothing else.
pub struct StockChangeBody;

impl PartialSchema for StockChangeBody {
    fn schema() -> RefOr<Schema> {
        let one = |field: &str, min: f64, description: &str| {
            let number = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(schema::SchemaFormat::KnownFormat(
                    schema::KnownFormat::Int64,
                )))
                .minimum(Some(min))
                .maximum(Some(1e12))
                .description(Some(description));
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(field, number)
                .required(field)
                .additional_properties(Some(schema::AdditionalProperties::FreeForm(false)))
        };
        let either = schema::OneOfBuilder::new()
            .item(one("available", 0.0, "units on the shelf from now on"))
            .item(one("delta", -1e12, "units added (positive) or taken away"))
            .examples([serde_json::json!({"available": 120})])
            .build();
        RefOr::T(Schema::OneOf(either))
    }
}

impl ToSchema for StockChangeBody {}
