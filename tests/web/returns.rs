//! After the sale, on an order's page: a return of part of a delivered order (the form lists
//! each line with the units the shopper still holds, sends only what they chose, and offers the
//! rest afterwards; choosing nothing is said, not sent), and a parcel booked before the order
//! was cancelled, shown cancelled.

use crate::{Shop, TURN, browser, click, driver, fill, log_in, quiet, shoot, until};
use serde_json::{Value, json};
use std::time::Duration;

/// An order of two units of `sku`, paid through the sandbox gateway and shipped (the carrier
/// booked); its id.
async fn shipped_order(shop: &Shop, token: &str, sku: &str, key: &str) -> String {
    let body = json!({"items": [{"sku_id": sku, "quantity": 2}],
        "shipping_address": {"name": "Kim Ara", "phone": "010-1111-2222", "address": "서울시 1"}});
    let placed = shop
        .client
        .post(format!("{}/api/v1/orders", shop.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await.unwrap();
    let (id, total) = (placed["order_id"].as_str().unwrap(), &placed["total"]);
    let card = json!({"order_id": id, "amount": total, "card_number": "4111111111111111"});
    let payment: Value = shop
        .client
        .post(format!("{}/sandbox/pg/v1/payments", shop.base))
        .json(&card)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let confirm = json!({"order_id": id, "payment_key": payment["payment_key"], "amount": total});
    shop.call(token, "POST", "/payments/confirm", Some(confirm))
        .await;
    shop.admin("POST", &format!("/admin/orders/{id}/ship"), None)
        .await;
    id.to_string()
}

/// [`shipped_order`], once the sandbox carrier has delivered it.
async fn delivered_order(shop: &Shop, token: &str, sku: &str) -> String {
    let id = shipped_order(shop, token, sku, "returns-order").await;
    for _ in 0..200 {
        let order = shop
            .call(token, "GET", &format!("/orders/{id}"), None)
            .await;
        if order["status"] == "delivered" {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("order {id} not delivered in 20 s");
}

#[tokio::test]
async fn a_shopper_returns_one_of_two_units_and_may_return_the_other_later() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let product = json!({"name": "Return Tee", "category": "tops",
        "skus": [{"sku_id": "return-tee", "options": {"size": "M"}, "price": 15000, "stock": 5}]});
    shop.admin("POST", "/admin/products", Some(product)).await;
    let email = "returns@example.com";
    shop.account(email, &["customer"]).await;
    let token = shop.token(email).await;
    let id = delivered_order(&shop, &token, "return-tee").await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &shop.base, email).await;
    page.goto(&format!("{}/#/order/{id}", shop.base))
        .await
        .unwrap();

    // Given the form, with both units chosen at first
    let units = "document.querySelector('#return-form input[name=units]')";
    until(&page, &format!("{units}?.value === '2'"), "the return form").await;
    page.execute(
        "document.querySelector('#return-form').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shoot(&page, "return").await;
    // When the shopper keeps one and sends the other back
    fill(&page, "return-form", "units", "1").await;
    fill(&page, "return-form", "reason", "Too small").await;
    click(&page, "#return-form button[type=submit]").await;
    // Then one unit is returned, refunded at its price
    let mut order = Value::Null;
    for _ in 0..100 {
        order = shop
            .call(&token, "GET", &format!("/orders/{id}"), None)
            .await;
        if order["payment"]["refunded"] == 15000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(order["payment"]["refunded"], 15000, "{order}");
    let returns = order["returns"].as_array().unwrap();
    assert_eq!(returns.len(), 1, "{order}");
    assert_eq!(
        returns[0]["items"],
        json!([{"sku_id": "return-tee", "quantity": 1}])
    );
    // And the page offers the unit still held
    until(
        &page,
        &format!("{units}?.max === '1' && {units}.value === '1'"),
        "the form again, for the unit left",
    )
    .await;

    // When nothing is chosen, the page says so and sends nothing
    fill(&page, "return-form", "units", "0").await;
    fill(&page, "return-form", "reason", "Changed my mind").await;
    click(&page, "#return-form button[type=submit]").await;
    until(
        &page,
        "document.querySelector('#toast').textContent.includes('Choose at least one item')",
        "the note that nothing was chosen",
    )
    .await;
    let order = shop
        .call(&token, "GET", &format!("/orders/{id}"), None)
        .await;
    assert_eq!(order["returns"].as_array().unwrap().len(), 1, "{order}");
    quiet(&page, "partial return").await;
    shop.stop();
}

#[tokio::test]
async fn an_order_cancelled_after_its_parcel_was_booked_shows_the_shipment_cancelled() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let product = json!({"name": "Cancel Tee", "category": "tops",
        "skus": [{"sku_id": "cancel-tee", "options": {"size": "M"}, "price": 15000, "stock": 5}]});
    shop.admin("POST", "/admin/products", Some(product)).await;
    let email = "cancels@example.com";
    shop.account(email, &["customer"]).await;
    let token = shop.token(email).await;
    // Given a parcel booked (the order preparing), then the order cancelled
    let id = shipped_order(&shop, &token, "cancel-tee", "cancel-order").await;
    let cancelled = shop
        .call(&token, "POST", &format!("/orders/{id}/cancel"), None)
        .await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["shipment"]["status"], "ready", "{cancelled}");
    // Then its page says the shipment was cancelled, not only that it was ready
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &shop.base, email).await;
    page.goto(&format!("{}/#/order/{id}", shop.base))
        .await
        .unwrap();
    until(
        &page,
        "document.querySelector('#order-status')?.textContent === 'Cancelled' \
         && document.querySelector('#order-body').textContent.includes('Shipment cancelled')",
        "the cancelled shipment",
    )
    .await;
    quiet(&page, "cancelled shipment").await;
    shop.stop();
}
