//! Each route's JSON body, from arbitrary bytes, against the real application (sled in a
//! temporary directory, served on loopback): whatever the body, the answer is never a 500, a
//! 503 comes with `Retry-After`, and the connection is never dropped. The first byte picks the
//! route, the second who calls (a customer or the operator); the rest is the body.
#![no_main]

use emporium::auth::tokens::TokenKeys;
use emporium::config::{Overrides, Settings};
use emporium::domain::ids::UserId;
use emporium::startup::Application;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

const OPERATOR: &str = "fuzz-operator-token";
const SECRET: &str = "fuzz-jwt-secret-fuzz-jwt-secret-0123456789";

/// Routes that take a body (ids in paths exist or not; both must be answered cleanly).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/resend-code"),
    ("PATCH", "/api/v1/users/me"),
    ("PUT", "/api/v1/cart/items/mug"),
    ("PUT", "/api/v1/cart/coupon"),
    ("POST", "/api/v1/coupons/claim"),
    ("POST", "/api/v1/orders"),
    ("POST", "/api/v1/payments/confirm"),
    ("POST", "/api/v1/orders/o1/returns"),
    ("POST", "/api/v1/drops/d1/purchase"),
    ("POST", "/api/v1/chat/rooms"),
    ("POST", "/api/v1/chat/rooms/r1/messages"),
    ("POST", "/api/v1/admin/products"),
    ("PATCH", "/api/v1/admin/products/p1"),
    ("PUT", "/api/v1/admin/skus/mug/stock"),
    ("POST", "/api/v1/admin/drops"),
    ("POST", "/api/v1/admin/coupon-campaigns"),
    ("POST", "/api/v1/admin/users"),
    ("POST", "/api/v1/admin/skus/mug/reservations"),
];

struct Server {
    runtime: tokio::runtime::Runtime,
    base: String,
    client: reqwest::Client,
    customer: String,
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let env: HashMap<String, String> = [
            ("EMPORIUM_OPERATOR_TOKEN", OPERATOR),
            ("EMPORIUM_LISTEN", "127.0.0.1:0"),
            ("EMPORIUM_JWT_SECRET", SECRET),
            ("EMPORIUM_DATA_DIR", dir.path().to_str().unwrap()),
            ("EMPORIUM_AUTH_RATE_PER_IP", "0"),
            ("EMPORIUM__AUTH__ARGON2_M_KIB", "1024"),
            ("EMPORIUM__AUTH__ARGON2_T", "1"),
            ("EMPORIUM__LOG__FILTER", "off"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let settings = Settings::load_with_env(&Overrides::default(), env).expect("settings");
        let base = runtime.block_on(async {
            let app = Application::build(settings).await.expect("the app builds");
            let base = format!("http://{}", app.local_addr());
            tokio::spawn(app.run_until_stopped());
            base
        });
        let keys = TokenKeys::new(SECRET.as_bytes(), 3600);
        let user = UserId::parse("u_fuzz").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (customer, _) = keys.issue(&user, &Default::default(), "fuzz", now).unwrap();
        Server {
            runtime,
            base,
            client: reqwest::Client::new(),
            customer,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [route, who, body @ ..] = data else {
        return;
    };
    let s = server();
    let (method, path) = ROUTES[*route as usize % ROUTES.len()];
    let token = if who % 2 == 0 {
        s.customer.as_str()
    } else {
        OPERATOR
    };
    let request = s
        .client
        .request(method.parse().unwrap(), format!("{}{path}", s.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", "fuzz")
        .body(body.to_vec());
    let response = s
        .runtime
        .block_on(request.send())
        .expect("the connection holds");
    let status = response.status().as_u16();
    assert_ne!(
        status,
        500,
        "{method} {path}: 500 for {:?}",
        String::from_utf8_lossy(body)
    );
    if status == 503 {
        assert!(
            response.headers().contains_key("retry-after"),
            "{method} {path}: 503 without Retry-After"
        );
    }
});
