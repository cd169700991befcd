//! Catalog over HTTP: admin writes, index reads (list, search, pagination, suggest, categories),
//! sales ranking from SKU sales, errors, and a restart that keeps everything.

use crate::helpers::{OPERATOR_TOKEN, TestApp, assert_problem, spawn_app, spawn_app_in};
use serde_json::{Value, json};

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/admin/products"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.unwrap()
}

async fn json_of(r: reqwest::Response) -> Value {
    assert!(r.status().is_success(), "status {}", r.status());
    r.json().await.unwrap()
}

fn tee(name: &str, category: &str, sku: &str, stock: u64) -> Value {
    json!({
        "name": name, "description": "soft cotton", "category": category,
        "skus": [
            {"sku_id": format!("{sku}-m"), "options": {"size": "M", "color": "red"}, "price": 12900, "stock": stock},
            {"sku_id": format!("{sku}-l"), "options": {"size": "L", "color": "red"}, "price": 13900, "stock": 0}
        ]
    })
}

async fn seed(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, cat, sku, stock) in [
        ("Red Cotton Tee", "tops", "rct", 5),
        ("Blue Denim Jacket", "outer", "bdj", 2),
        ("빨간 반팔 티셔츠", "tops", "krt", 3),
        ("Red Rain Coat", "Outer", "rrc", 0),
    ] {
        let r = create(app, tee(name, cat, sku, stock)).await;
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await.unwrap()["product_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids
}

#[tokio::test]
async fn admin_creates_and_shoppers_browse() {
    let app = spawn_app().await;
    let r = create(&app, tee("Red Cotton Tee", "Tops", "rct", 5)).await;
    assert_eq!(r.status(), 201);
    let p = r.json::<Value>().await.unwrap();
    assert_eq!(p["category"], "tops");
    assert_eq!(p["currency"], "KRW");
    assert_eq!(
        p["skus"][0],
        json!({"sku_id": "rct-m", "options": {"color": "red", "size": "M"}, "price": 12900, "available": 5, "sold": 0})
    );
    assert_eq!(p["skus"][1]["available"], 0);
    let id = p["product_id"].as_str().unwrap();
    let detail = json_of(get(&app, &format!("/api/v1/products/{id}")).await).await;
    assert_eq!(detail, p);
    let page = json_of(get(&app, "/api/v1/products").await).await;
    assert_eq!(page["items"][0]["price_from"], 12900);
    assert_eq!(page["items"][0]["in_stock"], true);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_problem(get(&app, "/api/v1/products/nope").await, 404, "not_found").await;
    assert_problem(
        get(&app, "/api/v1/products/bad%20id").await,
        400,
        "invalid_id",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn search_filter_paginate_and_categories() {
    let app = spawn_app().await;
    let ids = seed(&app).await;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let found = json_of(get(&app, "/api/v1/products?q=RED").await).await;
    assert_eq!(names(&found), vec!["Red Cotton Tee", "Red Rain Coat"]);
    let found = json_of(get(&app, "/api/v1/products?q=red&category=outer").await).await;
    assert_eq!(names(&found), vec!["Red Rain Coat"]);
    assert_eq!(found["items"][0]["in_stock"], false);
    let found = json_of(get(&app, "/api/v1/products?q=%ED%8B%B0%EC%85%94").await).await; // "티셔"
    assert_eq!(names(&found), vec!["빨간 반팔 티셔츠"]);
    let found = json_of(get(&app, "/api/v1/products?category=tops").await).await;
    assert_eq!(names(&found).len(), 2);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/products?limit=3&cursor={c}"),
            None => "/api/v1/products?limit=3".to_string(),
        };
        let page = json_of(get(&app, &path).await).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["product_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every product once, in creation order");

    assert_problem(
        get(&app, "/api/v1/products?limit=0").await,
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get(&app, "/api/v1/products?limit=abc").await,
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get(&app, "/api/v1/products?cursor=%2F%2F").await,
        400,
        "invalid_cursor",
    )
    .await;
    let many = json_of(get(&app, "/api/v1/products?limit=1000").await).await;
    assert_eq!(many["items"].as_array().unwrap().len(), 4);

    let cats = json_of(get(&app, "/api/v1/categories").await).await;
    assert_eq!(
        cats,
        json!({"items": [{"category": "outer", "product_count": 2}, {"category": "tops", "product_count": 2}]})
    );
    app.stop().await;
}

#[tokio::test]
async fn suggestions_rank_by_sales() {
    let app = spawn_app().await;
    seed(&app).await;
    let suggest = |q: &str| {
        let url = app.url(&format!("/api/v1/search/suggest?q={q}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let s = json_of(suggest("re").await).await;
    assert_eq!(s["suggestions"], json!(["Red Cotton Tee", "Red Rain Coat"]));
    // Two units of the rain coat sell: it moves up.
    app.put_stock("rrc-m", json!({"available": 2})).await;
    for order in ["o1", "o2"] {
        assert_eq!(app.reserve("rrc-m", order, 1).await.status(), 201);
        let r = app
            .client
            .post(app.url(&format!(
                "/api/v1/admin/skus/rrc-m/reservations/{order}/commit"
            )))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let s = json_of(suggest("RE").await).await;
    assert_eq!(s["suggestions"], json!(["Red Rain Coat", "Red Cotton Tee"]));
    let s = json_of(suggest("%EB%B9%A8").await).await; // "빨"
    assert_eq!(s["suggestions"], json!(["빨간 반팔 티셔츠"]));
    let s = json_of(get(&app, "/api/v1/search/suggest?q=re&limit=1").await).await;
    assert_eq!(s["suggestions"].as_array().unwrap().len(), 1);
    assert_problem(
        get(&app, "/api/v1/search/suggest").await,
        400,
        "invalid_query",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn admin_updates_and_errors() {
    let app = spawn_app().await;
    let ids = seed(&app).await;
    let patch = |id: &str, body: Value, token: &str| {
        app.client
            .patch(app.url(&format!("/api/v1/admin/products/{id}")))
            .bearer_auth(token.to_string())
            .json(&body)
            .send()
    };
    let r = patch(
        &ids[0],
        json!({"name": "Red Linen Tee", "skus": [{"sku_id": "rct-l", "price": 9900}]}),
        OPERATOR_TOKEN,
    )
    .await
    .unwrap();
    let p = json_of(r).await;
    assert_eq!(p["name"], "Red Linen Tee");
    assert_eq!(p["skus"][1]["price"], 9900);
    let found = json_of(get(&app, "/api/v1/products?q=linen").await).await;
    assert_eq!(
        found["items"][0]["price_from"], 9900,
        "the index follows the update"
    );
    let old_name = json_of(get(&app, "/api/v1/search/suggest?q=cott").await).await;
    assert_eq!(
        old_name["suggestions"],
        json!([]),
        "the old name is gone from suggestions"
    );

    // A thumbnail is set, kept by a patch that does not name it, and removed by null.
    let url = "https://cdn.example.com/rct.jpg";
    let with = json!({"thumbnail": url});
    let p = json_of(patch(&ids[0], with, OPERATOR_TOKEN).await.unwrap()).await;
    assert_eq!(p["thumbnail"], url);
    let renamed = json!({"name": "Red Linen Tee II"});
    let p = json_of(patch(&ids[0], renamed, OPERATOR_TOKEN).await.unwrap()).await;
    assert_eq!(p["thumbnail"], url, "absent keeps it");
    let without = json!({"thumbnail": null});
    let p = json_of(patch(&ids[0], without, OPERATOR_TOKEN).await.unwrap()).await;
    assert_eq!(p["thumbnail"], Value::Null, "{p}");
    let listed = json_of(get(&app, "/api/v1/products?q=linen").await).await;
    assert_eq!(listed["items"][0]["thumbnail"], Value::Null, "{listed}");

    let r = patch(
        &ids[0],
        json!({"skus": [{"sku_id": "ghost", "price": 1}]}),
        OPERATOR_TOKEN,
    )
    .await
    .unwrap();
    assert_problem(r, 422, "invalid_field").await;
    let r = patch("p-missing", json!({"name": "x"}), OPERATOR_TOKEN)
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    let (_, customer, _) = app.customer("shopper@example.com").await;
    let r = patch(&ids[0], json!({"name": "x"}), &customer)
        .await
        .unwrap();
    assert_problem(r, 403, "forbidden").await;

    assert_problem(
        create(&app, tee("Copy", "tops", "rct", 1)).await,
        409,
        "sku_taken",
    )
    .await;
    let no_skus = json!({"name": "Empty", "category": "tops", "skus": []});
    assert_problem(create(&app, no_skus).await, 422, "invalid_field").await;
    let negative = json!({"name": "Neg", "category": "tops", "skus": [{"price": -5}]});
    assert_problem(create(&app, negative).await, 422, "invalid_field").await;
    let untyped = json!({"name": "Bad", "category": "tops", "skus": [{"price": "free"}]});
    assert_problem(create(&app, untyped).await, 422, "invalid_body").await;
    app.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_catalog_and_its_index() {
    let app = spawn_app().await;
    let ids = seed(&app).await;
    let before = json_of(get(&app, &format!("/api/v1/products/{}", ids[1])).await).await;
    let dir = app.stop().await;
    let app = spawn_app_in(dir, &[]).await;
    let after = json_of(get(&app, &format!("/api/v1/products/{}", ids[1])).await).await;
    assert_eq!(before, after);
    let found = json_of(get(&app, "/api/v1/products?q=denim").await).await;
    assert_eq!(found["items"][0]["product_id"], ids[1].as_str());
    let s = json_of(get(&app, "/api/v1/search/suggest?q=blu").await).await;
    assert_eq!(s["suggestions"], json!(["Blue Denim Jacket"]));
    app.stop().await;
}

#[tokio::test]
async fn simultaneous_creations_naming_one_sku_make_one_product() {
    // Given eight admins creating a product with the same two SKUs at once, half of them
    // naming the SKUs in the other order, each with its own price and stock
    let app = spawn_app().await;
    let creations = (1..=8).map(|i| {
        let sku =
            |id: &str| json!({"sku_id": id, "options": {"n": id}, "price": 1000 * i, "stock": i});
        let skus = if i % 2 == 0 {
            vec![sku("dup-1"), sku("dup-2")]
        } else {
            vec![sku("dup-2"), sku("dup-1")]
        };
        create(
            &app,
            json!({"name": format!("Dup {i}"), "category": "dups", "skus": skus}),
        )
    });
    let answers = futures::future::join_all(creations).await;
    // Then exactly one is created and the others are told a SKU is taken
    let mut created = Vec::new();
    for r in answers {
        match r.status().as_u16() {
            201 => created.push(r.json::<Value>().await.unwrap()),
            _ => {
                assert_problem(r, 409, "sku_taken").await;
            }
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    let winner = &created[0];
    let stock = winner["skus"][0]["price"].as_i64().unwrap() / 1000;
    // And after a restart the catalog lists that one product, at its price and with its stock
    let app = spawn_app_in(app.stop().await, &[]).await;
    let page = json_of(get(&app, "/api/v1/products?category=dups").await).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["product_id"], winner["product_id"]);
    let id = winner["product_id"].as_str().unwrap();
    let p = json_of(get(&app, &format!("/api/v1/products/{id}")).await).await;
    for sku in p["skus"].as_array().unwrap() {
        assert_eq!(sku["available"], stock, "{p}");
    }
    app.stop().await;
}

/// Hangul as it is typed: an input method composes a syllable a key at a time, so the box
/// holds 청ㅂ and 청밪 on the way to 청바지; each stage still suggests it (it went blank at
/// every other key), as do its initials (초성), and a name that runs Hangul and Latin
/// together is found by each run.
#[tokio::test]
async fn hangul_is_suggested_at_every_stage_of_typing_and_by_its_initials() {
    let app = spawn_app().await;
    for (name, sku) in [
        ("청바지 슬림핏", "jeans"),
        ("나이키Air맥스 270", "nike"),
        ("치마", "skirt"),
    ] {
        assert_eq!(create(&app, tee(name, "misc", sku, 1)).await.status(), 201);
    }
    let suggest = |q: &str| {
        let url = app.url("/api/v1/search/suggest");
        let client = app.client.clone();
        let q = q.to_string();
        async move {
            let r = client.get(url).query(&[("q", q)]).send().await.unwrap();
            json_of(r).await["suggestions"].clone()
        }
    };
    for typed in [
        "청",
        "청ㅂ",
        "청바",
        "청밪",
        "청바지",
        "ㅊㅂㅈ",
        "청바지 슬림피",
        "ㅅㄹㅍ",
    ] {
        assert_eq!(suggest(typed).await, json!(["청바지 슬림핏"]), "{typed}");
    }
    assert_eq!(suggest("처").await, json!(["청바지 슬림핏"]));
    assert_eq!(suggest("ㅊ").await, json!(["청바지 슬림핏", "치마"]));
    assert_eq!(suggest("청ㅁ").await, json!([]));
    for typed in ["air", "맥스", "나이키air", "ㄴㅇㅋ"] {
        assert_eq!(
            suggest(typed).await,
            json!(["나이키Air맥스 270"]),
            "{typed}"
        );
    }
    let search = get(&app, "/api/v1/products?q=%EB%A7%A5%EC%8A%A4").await;
    let found = json_of(search).await;
    assert_eq!(found["items"][0]["name"], "나이키Air맥스 270");
}
