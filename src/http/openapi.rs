//! Makes the generated OpenAPI document say what the edge answers besides each route's own
//! statuses: every problem is `application/problem+json` (RFC 9457, the `Problem` schema), and
//! each operation lists the problems any route of its kind can give — 401 where a bearer token
//! is needed; 400 (`malformed_json`), 413, 415 and 422 where a JSON body is read; 400
//! (`invalid_id`) and 404 where ids are in the path; 400 (`invalid_query`) where the query is
//! read, whose `limit` is at least 1; 404 where a token's account is read; 429 (`overloaded`)
//! and 503 (`timeout`, `unavailable`, with `Retry-After`) where entities are asked — and
//! string path parameters carry the id rule (`domain::ids`: 1 to 64 of `A-Za-z0-9._:-`), as do
//! `…_id` fields, and a field of `format = "line"` gets the one-line text rule ([`LINE`]).
//! Applied once, to the document the router collected from the routes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::LazyLock;
use unicode_normalization::char::is_combining_mark;
use utoipa::openapi::content::Content;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayItems, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};

const PROBLEM: &str = "application/problem+json";
/// `domain::ids`: what every id is made of.
const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,64}$";

/// One line of text (names, phones, addresses, categories): no control characters or line
/// separators, and some character that is neither a space, nor default-ignorable, nor a
/// combining mark — what `domain::text::is_line` accepts. A field says `format = "line"` and
/// gets this pattern here, in place of the format. The combining marks of the Basic
/// Multilingual Plane are listed from the same table the server reads, when the document is
/// built. ECMA-262 without the `u` flag sees a code point above U+FFFF as two surrogates, so
/// the pattern takes the few default-ignorable ones and marks there (the tag characters, some
/// musical and historic scripts' marks) for visible, where the server does not.
pub static LINE: LazyLock<String> = LazyLock::new(|| {
    let mut marks = String::new();
    let is_mark = |c: u32| char::from_u32(c).is_some_and(is_combining_mark);
    let mut c = 0_u32;
    while c <= 0xffff {
        if !is_mark(c) {
            c += 1;
            continue;
        }
        let first = c;
        while c < 0xffff && is_mark(c + 1) {
            c += 1;
        }
        match c - first {
            0 => write!(marks, "\\u{first:04X}"),
            _ => write!(marks, "\\u{first:04X}-\\u{c:04X}"),
        }
        .expect("writing to a String");
        c += 1;
    }
    format!(
        r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029]*[^\s\u0000-\u001F\u007F-\u009F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u2028-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB{marks}][^\u0000-\u001F\u007F-\u009F\u2028\u2029]*$"
    )
});

/// The document as served: JSON rendered once at start-up.
#[derive(Clone)]
pub struct Rendered(pub axum::body::Bytes);

/// `doc` as JSON. utoipa 5.5 writes a link's fields as Rust names (`operation_id`); OpenAPI
/// spells them `operationId`, `operationRef` and `requestBody` (3.1, 4.8.20.1).
pub fn render(doc: &OpenApi) -> Rendered {
    let mut value = serde_json::to_value(doc).expect("the OpenAPI document is JSON");
    let links = value
        .get_mut("paths")
        .and_then(|p| p.as_object_mut())
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|r| r.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|l| l.as_object_mut());
    for link in links {
        for (rust, spec) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(rust) {
                link.insert(spec.to_owned(), v);
            }
        }
    }
    Rendered(
        serde_json::to_vec(&value)
            .expect("the OpenAPI document is JSON")
            .into(),
    )
}

/// Completes every operation of `doc` (see the module's documentation).
pub fn complete(doc: &mut OpenApi) {
    if let Some(components) = doc.components.as_mut() {
        for schema in components.schemas.values_mut() {
            ids_of(schema);
            lines_of(schema);
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        // Health, metrics and the document itself ask no entity.
        let asks = path.starts_with("/api/v1/") && path != "/api/v1/openapi.json";
        for op in operations_mut(item) {
            complete_operation(op, asks);
        }
    }
    link(doc);
}

/// OpenAPI links (3.1, 4.8.20), which let a client (and schemathesis's stateful phase) follow
/// what an operation creates: each id a 2xx body gives — a top-level `…_id`, or the first
/// element's of a list such as a product's `skus` — feeds every operation whose path ids it
/// supplies, all of them.
fn link(doc: &mut OpenApi) {
    let schemas = doc
        .components
        .as_ref()
        .map(|c| c.schemas.clone())
        .unwrap_or_default();
    // What each operation needs: its id and its path ids.
    let mut takers: Vec<(String, Vec<String>)> = vec![];
    for item in doc.paths.paths.values() {
        for op in operations(item) {
            let needs: Vec<String> = op
                .parameters
                .iter()
                .flatten()
                .filter(|p| matches!(p.parameter_in, ParameterIn::Path))
                .map(|p| p.name.clone())
                .collect();
            if let (Some(id), false) = (&op.operation_id, needs.is_empty()) {
                takers.push((id.clone(), needs));
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            for (status, response) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if !status.starts_with('2') {
                    continue;
                }
                let given = response
                    .content
                    .get("application/json")
                    .and_then(|c| c.schema.as_ref())
                    .map(|s| ids_given(s, &schemas))
                    .unwrap_or_default();
                for (target, needs) in &takers {
                    let Some(pointers) = needs
                        .iter()
                        .map(|n| given.iter().find(|(name, _)| name == n))
                        .collect::<Option<Vec<_>>>()
                    else {
                        continue;
                    };
                    let mut builder = LinkBuilder::new().operation_id(target.clone());
                    for (name, pointer) in pointers {
                        builder =
                            builder.parameter(name.clone(), format!("$response.body#{pointer}"));
                    }
                    response
                        .links
                        .insert(target.clone(), RefOr::T(builder.build()));
                }
            }
        }
    }
}

/// The ids a response body of `schema` gives, as (name, JSON pointer).
fn ids_given(
    schema: &RefOr<Schema>,
    schemas: &BTreeMap<String, RefOr<Schema>>,
) -> Vec<(String, String)> {
    let object = |s: &RefOr<Schema>| -> Option<Schema> {
        match s {
            RefOr::Ref(r) => {
                let name = r.ref_location.rsplit('/').next()?;
                match schemas.get(name)? {
                    RefOr::T(s) => Some(s.clone()),
                    RefOr::Ref(_) => None,
                }
            }
            RefOr::T(s) => Some(s.clone()),
        }
    };
    let Some(Schema::Object(top)) = object(schema) else {
        return vec![];
    };
    // The body's own ids first: an id of a listed element only where the body has none.
    let mut given: Vec<(String, String)> = top
        .properties
        .keys()
        .filter(|name| name.ends_with("_id"))
        .map(|name| (name.clone(), format!("/{name}")))
        .collect();
    for (name, property) in &top.properties {
        if let RefOr::T(Schema::Array(list)) = property
            && let ArrayItems::RefOrSchema(items) = &list.items
            && let Some(Schema::Object(element)) = object(items)
        {
            for inner in element.properties.keys().filter(|k| k.ends_with("_id")) {
                if !given.iter().any(|(n, _)| n == inner) {
                    given.push((inner.clone(), format!("/{name}/0/{inner}")));
                }
            }
        }
    }
    given
}

fn operations(item: &PathItem) -> impl Iterator<Item = &Operation> {
    [&item.get, &item.put, &item.post, &item.delete, &item.patch]
        .into_iter()
        .flatten()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
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

/// Every property of an object (or of each object of a `oneOf`, an enum's variants) with
/// `format: "line"` carries [`LINE`] instead.
fn lines_of(schema: &mut RefOr<Schema>) {
    if let RefOr::T(Schema::OneOf(one_of)) = schema {
        one_of.items.iter_mut().for_each(lines_of);
        return;
    }
    let RefOr::T(Schema::Object(object)) = schema else {
        return;
    };
    for property in object.properties.values_mut() {
        if let RefOr::T(Schema::Object(o)) = property
            && matches!(&o.format, Some(SchemaFormat::Custom(f)) if f == "line")
        {
            o.format = None;
            o.pattern = Some(LINE.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_pattern_accepts_what_the_server_accepts() {
        // Given the OpenAPI document's one-line pattern, as a client's validator reads it
        let line = regex::Regex::new(&LINE).expect("the pattern compiles");
        // Then it agrees with the server on every character of the Basic Multilingual Plane,
        // alone and after a visible one, and on a few whole names
        let agree = |text: &str| {
            let server = crate::domain::text::is_line(text, 0, 1000);
            assert_eq!(line.is_match(text), server, "{text:?}");
        };
        for c in (0..=0xffff_u32).filter_map(char::from_u32) {
            agree(&c.to_string());
            agree(&format!("a{c}"));
        }
        for text in [
            "한글 tee",
            " x ",
            "",
            "  ",
            "\u{200b}a",
            "a\u{2028}b",
            "👩\u{200d}💻",
            "e\u{301}",
            "\u{301}\u{302}",
        ] {
            agree(text);
        }
    }
}
