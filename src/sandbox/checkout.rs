//! The sandbox gateway's checkout page: where `payment.checkout_url` sends a shopper. A plain
//! HTML form (no script, so it works on any phone browser) takes a card number and authorises
//! the payment, like a provider's payment widget. With a `success_url` the browser is sent back
//! to the shop the way TossPayments does it (`?paymentKey=&orderId=&amount=`), and the shop
//! confirms with `POST /api/v1/payments/confirm`; without one the page shows the payment key.

use crate::sandbox::pg::{Create, DECLINED_CARD, Pg, TIMEOUT_CARD};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct Checkout {
    order_id: String,
    amount: i64,
    success_url: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Pay {
    order_id: String,
    amount: i64,
    card_number: String,
    success_url: Option<String>,
}

/// `GET /v1/checkout?order_id=&amount=[&success_url=]`: the card form.
/// `GET /v1/checkout` shows the page, `POST` authorises.
pub(super) fn routes() -> Router<Pg> {
    Router::new().route("/v1/checkout", get(page).post(pay))
}

async fn page(Query(c): Query<Checkout>) -> Response {
    if c.amount <= 0 || c.order_id.is_empty() {
        return error_page("The order id or the amount is missing.");
    }
    let back = c
        .success_url
        .as_deref()
        .filter(|u| valid_return(u))
        .map(|u| {
            format!(
                r#"<input type="hidden" name="success_url" value="{}">"#,
                escape(u)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sandbox checkout</h1>
<p>Order <code>{order}</code>: <strong>{amount}</strong></p>
<form method="post" action="checkout">
<input type="hidden" name="order_id" value="{order}">
<input type="hidden" name="amount" value="{amount}">{back}
<label>Card number <input name="card_number" inputmode="numeric" pattern="[0-9]{{16}}"
 maxlength="16" required autocomplete="cc-number" value="4111111111111111"></label>
<button type="submit">Pay {amount}</button>
</form>
<p>Test cards: any 16 digits approve; <code>{DECLINED_CARD}</code> is declined for insufficient
funds; <code>{TIMEOUT_CARD}</code> is captured but its confirmation answers late.</p>"#,
        order = escape(&c.order_id),
        amount = c.amount,
    );
    html(StatusCode::OK, &body)
}

/// `POST /v1/checkout` (form): authorises the payment, then back to the shop or the key shown.
async fn pay(State(pg): State<Pg>, Form(p): Form<Pay>) -> Response {
    let created = pg.register(Create {
        order_id: p.order_id.clone(),
        amount: p.amount,
        card_number: p.card_number.trim().to_owned(),
    });
    let payment = match created {
        Ok(payment) => payment,
        Err(_) => {
            return error_page("A card number has 16 digits and the amount must be positive.");
        }
    };
    if let Some(url) = p.success_url.as_deref().filter(|u| valid_return(u)) {
        let sep = if url.contains('?') { '&' } else { '?' };
        let query = serde_urlencoded::to_string([
            ("paymentKey", payment.payment_key.as_str()),
            ("orderId", payment.order_id.as_str()),
            ("amount", &payment.total_amount.to_string()),
        ])
        .unwrap_or_default();
        return Redirect::to(&format!("{url}{sep}{query}")).into_response();
    }
    let body = format!(
        r#"<h1>Payment authorised</h1>
<p>Payment key <code id="payment_key">{key}</code> for order <code>{order}</code>
({amount}).</p>
<p>The shop now confirms it: <code>POST /api/v1/payments/confirm {{"order_id", "payment_key",
"amount"}}</code>.</p>"#,
        key = escape(&payment.payment_key),
        order = escape(&payment.order_id),
        amount = payment.total_amount,
    );
    html(StatusCode::CREATED, &body)
}

/// Only web addresses: the page must not send a browser to `javascript:` or a local file.
fn valid_return(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn error_page(message: &str) -> Response {
    let body = format!("<h1>Sandbox checkout</h1><p>{}</p>", escape(message));
    html(StatusCode::BAD_REQUEST, &body)
}

fn html(status: StatusCode, body: &str) -> Response {
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Sandbox checkout</title></head><body>{body}</body></html>"#
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

fn escape(raw: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_safe(raw)
}
