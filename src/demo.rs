//! `emporium serve --demo` (dev mode only): on a node whose catalog is empty, a small shop to
//! look at before anything is set up — products with Hangul and Latin names and colour and
//! size options, a coupon campaign (`WELCOME10`), a limited drop that starts a minute after
//! start, and a demo shopper (with a shipping address) and a demo admin. Their passwords are
//! random, kept in `<data dir>/demo-credentials` (owner-only) and logged at every `--demo`
//! start, so the first page a newcomer opens is a shop they can buy from.

use crate::auth::accounts::SignUp;
use crate::catalog::{NewProduct, NewSku};
use crate::domain::coupon::Campaign;
use crate::domain::drop::DropSpec;
use crate::domain::ids::SkuId;
use crate::domain::pricing::{CouponTerms, DiscountKind, Scope};
use crate::domain::role::Role;
use crate::node::Node;
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// The file, in the data dir, that keeps the demo accounts' passwords.
pub const CREDENTIALS_FILE: &str = "demo-credentials";

/// The credentials file's first line while the shop is being seeded.
const SEEDING: &str = "# seeding: an earlier --demo start stopped before the shop was complete";

/// The demo shopper's and admin's addresses.
pub const SHOPPER_EMAIL: &str = "shopper@example.com";
pub const ADMIN_EMAIL: &str = "admin@example.com";

/// The drop's SKU, its units and how long after start it opens.
pub const DROP_SKU: &str = "sneaker-limited-270";
pub const DROP_UNITS: u32 = 20;
pub const DROP_STARTS_AFTER: Duration = Duration::from_secs(60);

/// One demo product: name, category, description, price (KRW), and its option axes; each
/// combination of options is a SKU `<slug>-<value>-<value>`.
struct Item {
    slug: &'static str,
    name: &'static str,
    category: &'static str,
    description: &'static str,
    price: i64,
    axes: &'static [(&'static str, &'static [&'static str])],
}

const COLOURS: (&str, &[&str]) = ("color", &["black", "white"]);
const SIZES: (&str, &[&str]) = ("size", &["S", "M", "L"]);
const SHOE_SIZES: (&str, &[&str]) = ("size", &["240", "250", "260", "270"]);

const ITEMS: &[Item] = &[
    Item {
        slug: "tee",
        name: "오버사이즈 티셔츠 Oversized Tee",
        category: "tops",
        description: "두꺼운 면 100%. Heavy cotton, boxy fit.",
        price: 12_900,
        axes: &[COLOURS, SIZES],
    },
    Item {
        slug: "hoodie",
        name: "후드 집업 Hooded Zip-up",
        category: "tops",
        description: "기모 안감. Brushed fleece inside.",
        price: 39_000,
        axes: &[COLOURS, SIZES],
    },
    Item {
        slug: "linen-shirt",
        name: "린넨 셔츠 Linen Shirt",
        category: "tops",
        description: "여름용 린넨. Breathable summer linen.",
        price: 45_000,
        axes: &[SIZES],
    },
    Item {
        slug: "denim",
        name: "와이드 데님 팬츠 Wide Denim",
        category: "bottoms",
        description: "워싱 데님, 와이드 핏. Washed denim, wide leg.",
        price: 59_000,
        axes: &[SIZES],
    },
    Item {
        slug: "slacks",
        name: "세미 와이드 슬랙스 Semi-wide Slacks",
        category: "bottoms",
        description: "구김이 적은 원단. Crease-resistant.",
        price: 49_000,
        axes: &[COLOURS, SIZES],
    },
    Item {
        slug: "down",
        name: "경량 패딩 Light Down Jacket",
        category: "outer",
        description: "덕다운 80/20. Packs into its own pocket.",
        price: 89_000,
        axes: &[COLOURS, SIZES],
    },
    Item {
        slug: "coat",
        name: "울 블렌드 코트 Wool Blend Coat",
        category: "outer",
        description: "울 60%. Single-breasted, knee length.",
        price: 189_000,
        axes: &[SIZES],
    },
    Item {
        slug: "sneaker",
        name: "캔버스 스니커즈 Canvas Sneakers",
        category: "shoes",
        description: "가벼운 캔버스. Light canvas, rubber sole.",
        price: 69_000,
        axes: &[COLOURS, SHOE_SIZES],
    },
    Item {
        slug: "beanie",
        name: "니트 비니 Knit Beanie",
        category: "accessories",
        description: "울 혼방 니트. One size.",
        price: 19_000,
        axes: &[COLOURS],
    },
    Item {
        slug: "wallet",
        name: "가죽 카드지갑 Leather Card Wallet",
        category: "accessories",
        description: "소가죽, 카드 4장. Cowhide, four cards.",
        price: 35_000,
        axes: &[],
    },
    Item {
        slug: "tote",
        name: "캔버스 에코백 Canvas Tote",
        category: "accessories",
        description: "A4가 들어가는 크기. Fits A4.",
        price: 15_000,
        axes: &[],
    },
    Item {
        slug: "socks",
        name: "스트라이프 양말 3팩 Striped Socks 3-pack",
        category: "accessories",
        description: "면 혼방. Cotton blend.",
        price: 9_900,
        axes: &[],
    },
];

/// The limited product whose one SKU the drop sells.
const LIMITED: Item = Item {
    slug: "sneaker-limited",
    name: "한정판 스니커즈 Limited Edition Sneakers",
    category: "shoes",
    description: "20켤레 한정. Twenty pairs, one drop.",
    price: 159_000,
    axes: &[("size", &["270"])],
};

/// Seeds the demo shop into an empty catalog, or says why not; logs the demo accounts.
/// Fails when the node refuses a write or the data dir cannot be written (the caller stops the
/// start).
pub async fn prepare(node: &Node, data_dir: &Path) -> anyhow::Result<()> {
    let credentials = data_dir.join(CREDENTIALS_FILE);
    if let Ok(kept) = std::fs::read_to_string(&credentials) {
        if kept.starts_with(SEEDING) {
            tracing::warn!(
                "--demo: an earlier --demo start stopped while seeding; this data dir holds \
                 part of the demo shop (remove it for a whole one)"
            );
        }
        announce(&kept);
        return Ok(());
    }
    let empty = crate::catalog::index::Query {
        q: None,
        category: None,
        after: None,
        limit: 1,
    };
    if !node.catalog.index.list(&empty).0.is_empty() {
        tracing::warn!("--demo: the data dir already has a catalog; no demo shop added");
        return Ok(());
    }
    // The passwords are kept before anything is written, so a start that stops midway leaves
    // accounts whose passwords are known (and says so at the next start).
    let passwords = [password(), password()];
    let kept = format!(
        "# The demo accounts of `emporium serve --demo` (dev mode only).\n\
         {SHOPPER_EMAIL} {} customer\n{ADMIN_EMAIL} {} admin\n",
        passwords[0], passwords[1]
    );
    write_private(&credentials, &format!("{SEEDING}\n{kept}"))?;
    let now = node.clock.now();
    for (i, item) in ITEMS.iter().chain([&LIMITED]).enumerate() {
        let stock = if item.slug == LIMITED.slug {
            u64::from(DROP_UNITS)
        } else {
            20 + (i as u64 * 7) % 30
        };
        node.catalog
            .create(product(item, stock), now.millis())
            .await
            .map_err(|e| anyhow::anyhow!("demo product {}: {e}", item.slug))?;
    }
    let welcome = Campaign {
        name: "웰컴 쿠폰 Welcome 10%".into(),
        code: "WELCOME10".into(),
        terms: CouponTerms {
            kind: DiscountKind::Percent,
            value: 10,
            min_order: Some(30_000),
            max_discount: Some(5_000),
            scope: Scope::Order,
            starts_at: None,
            ends_at: None,
        },
        total_quantity: Some(1_000),
        per_user_limit: 1,
    };
    node.shopping
        .create_campaign(welcome)
        .await
        .map_err(|e| anyhow::anyhow!("demo campaign: {e}"))?;
    let drop_sku = SkuId::parse(DROP_SKU).expect("a valid id");
    let starts_at = now.plus(DROP_STARTS_AFTER);
    let spec = DropSpec {
        quantity: DROP_UNITS,
        price: 129_000,
        starts_at,
        ends_at: Some(starts_at.plus(Duration::from_secs(3600))),
        per_user_limit: 1,
    };
    node.drops
        .create(&drop_sku, spec)
        .await
        .map_err(|e| anyhow::anyhow!("demo drop: {e}"))?;
    let [shopper_password, admin_password] = passwords;
    let shopper = account(
        node,
        SHOPPER_EMAIL,
        "김민지 Minji Kim",
        Role::Customer,
        shopper_password,
    )
    .await?;
    node.accounts
        .update_profile(
            &shopper,
            None,
            Some(Some("010-1234-5678".into())),
            Some(Some("서울특별시 강남구 테헤란로 427, 5층".into())),
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo shopper's profile: {e}"))?;
    account(node, ADMIN_EMAIL, "Demo Admin", Role::Admin, admin_password).await?;
    // Complete: the file loses its first line.
    std::fs::write(&credentials, &kept)?;
    announce(&kept);
    tracing::info!(
        products = ITEMS.len() + 1,
        coupon = "WELCOME10",
        drop_sku = DROP_SKU,
        drop_starts_in_secs = DROP_STARTS_AFTER.as_secs(),
        "--demo: demo shop ready"
    );
    Ok(())
}

/// The products of `item`: one SKU per combination of its options, `stock` units each.
fn product(item: &Item, stock: u64) -> NewProduct {
    let mut combinations: Vec<Vec<(&str, &str)>> = vec![vec![]];
    for (axis, values) in item.axes {
        combinations = combinations
            .into_iter()
            .flat_map(|done| {
                values.iter().map(move |v| {
                    let mut next = done.clone();
                    next.push((*axis, *v));
                    next
                })
            })
            .collect();
    }
    let skus = combinations
        .into_iter()
        .map(|options| {
            let suffix: String = options.iter().map(|(_, v)| format!("-{v}")).collect();
            NewSku {
                sku_id: Some(SkuId::parse(format!("{}{suffix}", item.slug)).expect("a valid id")),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                price: item.price,
                stock,
            }
        })
        .collect();
    NewProduct {
        name: item.name.into(),
        description: item.description.into(),
        category: item.category.into(),
        thumbnail: None,
        skus,
    }
}

fn password() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}

/// A verified account with `role` and `password`.
async fn account(
    node: &Node,
    email: &str,
    name: &str,
    role: Role,
    password: String,
) -> anyhow::Result<crate::domain::ids::UserId> {
    let sign_up = SignUp {
        email: email.into(),
        password: SecretString::from(password),
        name: name.into(),
        phone: None,
    };
    let roles = BTreeSet::from([Role::Customer, role]);
    let (user_id, _) = node
        .accounts
        .sign_up(sign_up, roles, true)
        .await
        .map_err(|e| anyhow::anyhow!("demo account {email}: {e}"))?;
    Ok(user_id)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

/// Logs each demo account (dev mode: the passwords are meant to be read).
fn announce(kept: &str) {
    for line in kept.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        if let (Some(email), Some(password), Some(role)) =
            (fields.next(), fields.next(), fields.next())
        {
            tracing::info!(email, password, role, "--demo account");
        }
    }
}
