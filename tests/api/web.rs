//! The storefront's files as the engine serves them: from the binary, gzip-compressed when
//! asked, revalidated by ETag, under a policy that keeps the page to its own origin, and light
//! enough for a phone (the first page under 150 KB transferred).

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_storefront_is_served_compressed_and_cacheable() {
    let app = spawn_app().await;
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut request = app.client.get(app.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send()
    };
    // The page, plain.
    let page = get("/", &[]).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<label for="q" class="sr-only" data-t="search">Search</label>"#));
    assert!(html.contains("/assets/app.js") && html.contains("/assets/app.css"));

    // Revalidation: the same ETag is 304 with no body, weakly compared.
    let again = get("/", &[("if-none-match", &etag)]).await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(again.headers()["vary"], "accept-encoding");
    assert!(again.bytes().await.unwrap().is_empty());
    let weak = get("/", &[("if-none-match", &format!("W/{etag}"))])
        .await
        .unwrap();
    assert_eq!(weak.status(), 304);
    // The gzip coding has a validator of its own.
    let zipped = get("/", &[("accept-encoding", "gzip")]).await.unwrap();
    let zipped_etag = zipped.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(zipped_etag, etag);
    let stale = get(
        "/",
        &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
    )
    .await
    .unwrap();
    assert_eq!(stale.status(), 200);
    let changed = get("/", &[("if-none-match", "\"other\"")]).await.unwrap();
    assert_eq!(changed.status(), 200);

    // Compressed when asked, and the first page's files together stay under 150 KB: the page,
    // what it links and preloads, and every module those import.
    let mut transferred = 0;
    let mut queue = vec!["/".to_string()];
    let mut fetched = std::collections::BTreeSet::new();
    while let Some(path) = queue.pop() {
        if !fetched.insert(path.clone()) {
            continue;
        }
        let r = get(&path, &[("accept-encoding", "gzip, br;q=0")])
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let media = r.headers()["content-type"].to_str().unwrap().to_string();
        let zipped = r.bytes().await.unwrap();
        transferred += zipped.len();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut text)
            .unwrap();
        queue.extend(references(&path, &text));
        assert!(
            path == "/" && media.starts_with("text/html")
                || path.ends_with(".css") && media.starts_with("text/css")
                || path.ends_with(".js") && media.starts_with("text/javascript"),
            "{path}: {media}"
        );
    }
    assert!(
        fetched.contains("/common/core.js") && fetched.contains("/assets/orders.js"),
        "{fetched:?}"
    );
    assert!(transferred < 150 * 1024, "first page: {transferred} bytes");
    // Refused gzip: plain bytes, even when anything else is welcome.
    for refused in ["gzip;q=0", "*, gzip;q=0", "identity"] {
        let plain = get("/assets/app.js", &[("accept-encoding", refused)])
            .await
            .unwrap();
        assert!(
            plain.headers().get("content-encoding").is_none(),
            "{refused}"
        );
    }

    // An unknown file is a problem+json 404, like any unknown route.
    let missing = get("/assets/nope.js", &[]).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    // The console and the modules both faces share.
    for (path, needle) in [
        ("/ops", "/ops/assets/console.js"),
        ("/ops/assets/console.js", "/common/core.js"),
        ("/common/core.js", "export async function api"),
    ] {
        let r = get(path, &[]).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }
    app.stop().await;
}

/// The same-origin files `text` (at `path`) refers to: `href`/`src` attributes of a page,
/// and the `from "..."` imports of a module, resolved against `path`.
fn references(path: &str, text: &str) -> Vec<String> {
    let mut found = vec![];
    for marker in ["href=\"", "src=\"", "from \""] {
        for piece in text.split(marker).skip(1) {
            let target = piece.split('"').next().unwrap_or("");
            let resolved = if let Some(rel) = target.strip_prefix("./") {
                format!("{}/{rel}", path.rsplit_once('/').map_or("", |(dir, _)| dir))
            } else {
                target.to_string()
            };
            if resolved.starts_with('/')
                && !resolved.starts_with("//")
                && !resolved.starts_with("/api/")
            {
                found.push(resolved);
            }
        }
    }
    found
}
