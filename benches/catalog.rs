//! Catalog index latency at 100,000 products: `suggest` (prefix autocomplete ranked by sales)
//! and search with pagination, one query at a time, each timed into an HDR histogram.
//! `cargo bench --bench catalog`; with `--test` (as the test script runs it) a small smoke.

use emporium::catalog::demo;
use emporium::catalog::index::{CatalogIndex, Query};
use emporium::domain::catalog::{Product, SkuSpec};
use emporium::domain::ids::{ProductId, SkuId};
use emporium::domain::inventory::StockView;
use emporium::domain::time::Timestamp;
use hdrhistogram::Histogram;
use std::time::Instant;

fn build(n: u64) -> CatalogIndex {
    let index = CatalogIndex::new();
    for i in 0..n {
        let p = demo::product(i, 7);
        let id = ProductId::parse(format!("p{i:08}")).unwrap();
        let skus = p
            .skus
            .into_iter()
            .enumerate()
            .map(|(k, s)| SkuSpec {
                sku_id: SkuId::parse(format!("p{i:08}-{k}")).unwrap(),
                options: s.options,
                price: s.price,
            })
            .collect();
        let product = Product {
            name: p.name,
            description: p.description,
            category: p.category,
            thumbnail: None,
            skus,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        index.upsert(&id, product);
        if i % 10 == 0 {
            let sold = StockView {
                available: 10,
                reserved: 0,
                sold: i % 997,
                ..StockView::default()
            };
            index.record_stock(&SkuId::parse(format!("p{i:08}-0")).unwrap(), &sold);
        }
    }
    index
}

fn measure(name: &str, queries: &[String], f: impl Fn(&str) -> usize) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let started = Instant::now();
    let mut results = 0usize;
    for q in queries {
        let t = Instant::now();
        results += f(q);
        hist.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name}: {} queries, {:.0} queries/s, latency us p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} ({} results)",
        queries.len(),
        queries.len() as f64 / secs,
        us(0.5),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0,
        results
    );
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let (products, n_queries) = if smoke {
        (2_000, 500)
    } else {
        (100_000, 100_000)
    };
    let started = Instant::now();
    let index = build(products);
    println!(
        "built an index of {products} products in {:.2?}",
        started.elapsed()
    );
    let queries = demo::queries(n_queries, 11);
    measure("suggest (limit 10)", &queries, |q| {
        index.suggest(q, 10).len()
    });
    measure("search, first page of 20", &queries, |q| {
        index
            .list(&Query {
                q: Some(q),
                category: None,
                after: None,
                limit: 20,
            })
            .0
            .len()
    });
    measure("category page of 20", &queries, |_| {
        index
            .list(&Query {
                q: None,
                category: Some("tops"),
                after: None,
                limit: 20,
            })
            .0
            .len()
    });
}
