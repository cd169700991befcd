//! Deterministic demo products (Latin and Hangul names over a small vocabulary), for
//! `emporium seed-demo` and the catalog benchmarks.

use crate::catalog::{NewProduct, NewSku};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const ADJECTIVES: &[&str] = &[
    "Basic",
    "Classic",
    "Slim",
    "Oversized",
    "Vintage",
    "Light",
    "Warm",
    "Soft",
    "Urban",
    "Sport",
    "Premium",
    "Daily",
    "Summer",
    "Winter",
    "Cozy",
    "Essential",
];
const COLORS: &[&str] = &[
    "Red", "Blue", "Black", "White", "Green", "Grey", "Navy", "Beige", "Pink", "Olive",
];
const NOUNS: &[(&str, &str)] = &[
    ("Tee", "tops"),
    ("Shirt", "tops"),
    ("Hoodie", "tops"),
    ("Sweater", "tops"),
    ("Jacket", "outer"),
    ("Coat", "outer"),
    ("Parka", "outer"),
    ("Jeans", "bottoms"),
    ("Chinos", "bottoms"),
    ("Shorts", "bottoms"),
    ("Sneakers", "shoes"),
    ("Boots", "shoes"),
    ("Cap", "accessories"),
    ("Backpack", "bags"),
    ("Tote", "bags"),
    ("Scarf", "accessories"),
];
const HANGUL: &[&str] = &[
    "반팔",
    "긴팔",
    "티셔츠",
    "후드티",
    "맨투맨",
    "청바지",
    "운동화",
    "가방",
    "모자",
    "니트",
    "코트",
    "패딩",
    "원피스",
    "셔츠",
    "자켓",
    "슬랙스",
];

/// The `i`-th demo product (the same for the same `i`, `seed`).
pub fn product(i: u64, seed: u64) -> NewProduct {
    let mut rng = StdRng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (noun, category) = NOUNS[rng.random_range(0..NOUNS.len())];
    let name = if rng.random_bool(0.3) {
        let a = HANGUL[rng.random_range(0..HANGUL.len())];
        let b = HANGUL[rng.random_range(0..HANGUL.len())];
        format!("{a} {b} {i}")
    } else {
        let adj = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
        let color = COLORS[rng.random_range(0..COLORS.len())];
        format!("{adj} {color} {noun} {i}")
    };
    let price = rng.random_range(50..2000) * 100;
    let skus = ["S", "M"]
        .iter()
        .map(|size| NewSku {
            sku_id: None,
            options: BTreeMap::from([("size".to_string(), size.to_string())]),
            price,
            stock: rng.random_range(0..50),
        })
        .collect();
    NewProduct {
        name,
        description: format!("A {noun} for every day."),
        category: category.to_string(),
        thumbnail: None,
        skus,
    }
}

/// Prefixes shoppers type: 1 to 4 leading characters of the vocabulary's words.
pub fn queries(n: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let words: Vec<&str> = ADJECTIVES
        .iter()
        .chain(COLORS)
        .chain(NOUNS.iter().map(|(n, _)| n))
        .chain(HANGUL)
        .copied()
        .collect();
    (0..n)
        .map(|_| {
            let w = words[rng.random_range(0..words.len())];
            let take = rng.random_range(1..=4);
            w.chars().take(take).collect()
        })
        .collect()
}
