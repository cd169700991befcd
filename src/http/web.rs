//! The web faces' files, compiled into the binary: the storefront at `/` (`web/storefront/`,
//! its files under `/assets/`), the operator console at `/ops` (`web/ops/`, under
//! `/ops/assets/`), and the modules both import under `/common/` (`web/common/`).
//! Each file is served gzip-compressed to clients that accept it, with a strong `ETag` (its
//! SHA-256) and `Cache-Control: no-cache`, so a browser revalidates and gets `304 Not
//! Modified` until the binary changes. The pages are clients of the public API only; these
//! routes are not part of it (and not in the OpenAPI document).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

#[derive(rust_embed::Embed)]
#[folder = "web/"]
struct Files;

/// One file as served: its bytes and their `ETag`, gzipped bytes and theirs (each coding has
/// its own strong validator, RFC 9110 8.8.3), and the media type.
struct Asset {
    raw: Vec<u8>,
    etag: HeaderValue,
    gzip: Vec<u8>,
    gzip_etag: HeaderValue,
    media_type: &'static str,
}

/// Every file, compressed once, by its path under `web/`.
static ASSETS: LazyLock<HashMap<String, Asset>> = LazyLock::new(|| {
    Files::iter()
        .filter_map(|path| {
            let file = Files::get(&path)?;
            let raw = file.data.into_owned();
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&raw).ok()?;
            let gzip = encoder.finish().ok()?;
            let hash = file.metadata.sha256_hash();
            let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
            let etag = HeaderValue::from_str(&format!("\"{hex}\"")).ok()?;
            let gzip_etag = HeaderValue::from_str(&format!("\"{hex}-gz\"")).ok()?;
            let media_type = media_type(&path);
            let asset = Asset {
                raw,
                etag,
                gzip,
                gzip_etag,
                media_type,
            };
            Some((path.into_owned(), asset))
        })
        .collect()
});

fn media_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The web faces' routes: `/` and `/ops` (their pages), `/assets/...`, `/ops/assets/...` and
/// `/common/...` (their files).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(storefront))
        .route("/assets/{*path}", get(asset))
        .route("/ops", get(console))
        .route("/ops/", get(console))
        .route("/ops/assets/{*path}", get(console_asset))
        .route("/common/{*path}", get(common))
}

async fn storefront(headers: HeaderMap) -> Response {
    serve("storefront/index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("storefront/{path}"), &headers)
}

async fn console(headers: HeaderMap) -> Response {
    serve("ops/index.html", &headers)
}

async fn console_asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("ops/{path}"), &headers)
}

async fn common(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("common/{path}"), &headers)
}

/// The page's policy: its own files, and the API and WebSocket of this origin (a checkout
/// page it leaves for is a navigation, not a connection).
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data: https:; \
                   style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'";

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(path) else {
        return crate::http::error::ApiError::not_found("no such file").into_response();
    };
    let gzip = accepts_gzip(headers);
    let (body, etag) = if gzip {
        (&asset.gzip, &asset.gzip_etag)
    } else {
        (&asset.raw, &asset.etag)
    };
    // `If-None-Match` compares weakly (RFC 9110 13.1.2): a `W/` prefix is ignored.
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag
            })
        });
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.clone().into_response();
        if gzip {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `Accept-Encoding` gives gzip a non-zero weight (RFC 9110, 12.5.3): its own entry if it has
/// one, else `*`'s.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") {
            gzip = Some(weight);
        } else if name == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|w| w > 0.0)
}
