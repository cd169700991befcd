//! Makes the generated OpenAPI document say what the edge answers besides each route's own
//! statuses: every problem is `application/problem+json` (RFC 9457, the `Problem` schema), and
//! each operation lists the problems any route of its kind can give — 401 where a bearer token
//! is needed; 400 (`malformed_json`), 413, 415 and 422 where a JSON body is read; 400
//! (`invalid_id`) and 404 where ids are in the path; 400 (`invalid_query`) where the query is
//! read, whose `limit` is at least 1; 404 where a token's account is read; 429 (`overloaded`) and 503 (`timeout`,
//! `unavailable`, with `Retry-After`) where entities are asked — and string path parameters
//! carry the id rule (`domain::ids`: 1 to 64 of `A-Za-z0-9._:-`). Applied once, to the document
//! the router collected from the routes.

use utoipa::openapi::content::Content;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayItems, Schema, SchemaType, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};

const PROBLEM: &str = "application/problem+json";
/// `domain::ids`: what every id is made of.
const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,64}$";

/// Completes every operation of `doc` (see the module's documentation).
pub fn complete(doc: &mut OpenApi) {
    if let Some(components) = doc.components.as_mut() {
        for schema in components.schemas.values_mut() {
            ids_of(schema);
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        // Health, metrics and the document itself ask no entity.
        let asks = path.starts_with("/api/v1/") && path != "/api/v1/openapi.json";
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            complete_operation(op, asks);
        }
    }
}

/// Every `…_id` property of an object (a client's own `client_msg_id` aside) is an id, and so
/// is each of a room's `members`.
fn ids_of(schema: &mut RefOr<Schema>) {
    let RefOr::T(Schema::Object(object)) = schema else {
        return;
    };
    for (name, property) in object.properties.iter_mut() {
        let target = match property {
            RefOr::T(Schema::Array(list)) if name == "members" => match &mut list.items {
                ArrayItems::RefOrSchema(items) => &mut **items,
                ArrayItems::False => continue,
            },
            other => other,
        };
        let is_id = (name.ends_with("_id") && name != "client_msg_id") || name == "members";
        if let (true, RefOr::T(Schema::Object(o))) = (is_id, target)
            && is_string(&o.schema_type)
        {
            o.pattern = Some(ID_PATTERN.to_owned());
        }
    }
}

fn is_string(t: &SchemaType) -> bool {
    match t {
        SchemaType::Type(Type::String) => true,
        SchemaType::Array(types) => types.contains(&Type::String),
        _ => false,
    }
}

fn problem(description: &str) -> RefOr<Response> {
    let schema = RefOr::Ref(Ref::from_schema_name("Problem"));
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM, Content::new(Some(schema)))
            .build(),
    )
}

fn complete_operation(op: &mut Operation, asks: bool) {
    for (status, response) in op.responses.responses.iter_mut() {
        let failure = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(r)) = (failure, response)
            && let Some(content) = r.content.shift_remove("application/json")
        {
            r.content.insert(PROBLEM.to_owned(), content);
        }
    }
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let body = op.request_body.is_some();
    let (mut path_ids, mut query) = (false, false);
    for p in op.parameters.iter_mut().flatten() {
        if matches!(p.parameter_in, ParameterIn::Query) {
            query = true;
            // Pages: 1 and up (more than the maximum is served as the maximum).
            if p.name == "limit"
                && let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut()
            {
                o.minimum = Some(1f64.into());
            }
            continue;
        }
        if !matches!(p.parameter_in, ParameterIn::Path) {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut()
            && o.schema_type == SchemaType::Type(Type::String)
        {
            o.pattern = Some(ID_PATTERN.to_owned());
            path_ids = true;
        }
    }
    let mut add = |status: &str, what: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(what));
    };
    if secured {
        add("401", "missing, invalid, expired or revoked bearer token");
        // The account behind a valid token may be gone (deleted), or be none (the operator
        // token).
        add("404", "no such resource, or no account behind the token");
    }
    if body || path_ids || query {
        add(
            "400",
            "malformed JSON, a bad query value, or an id that breaks the id rule",
        );
    }
    if body {
        add("413", "body over the size limit");
        add("415", "not application/json");
        add("422", "a body of the wrong shape or values");
    }
    if path_ids {
        add("404", "no such resource");
    }
    if asks {
        add("429", "the node sheds load; retry after Retry-After");
        add(
            "503",
            "no reply in time, or unavailable; retry after Retry-After",
        );
    }
}
