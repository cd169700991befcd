//! The catalog read model: every product in memory with a token index for search, a
//! sales-ordered set for suggestions, and category lists. Built at start from the durable views
//! of the product and SKU entities and kept current by their view listeners, so catalog reads
//! never go through a mailbox.
//!
//! Hand-written rather than a search crate: the whole corpus is in memory and changes one
//! product at a time; an FST (immutable, rebuilt on every change) or a full-text engine (a
//! large dependency with its own storage) would not serve this better.

use crate::catalog::words::{query_words, tokens};
use crate::domain::catalog::Product;
use crate::domain::ids::{ProductId, SkuId};
use crate::domain::inventory::StockView;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

/// Above this many prefix matches, suggestions walk best-sellers and searches walk products in
/// page order instead of collecting the matches.
const SCAN_BY_SALES_ABOVE: usize = 512;

struct Entry {
    product: Arc<Product>,
    name_tokens: Vec<String>,
    search_tokens: Vec<String>,
}

#[derive(Default)]
struct Index {
    products: BTreeMap<ProductId, Entry>,
    sku_owner: HashMap<SkuId, ProductId>,
    search: BTreeMap<String, BTreeSet<ProductId>>,
    names: BTreeMap<String, BTreeSet<ProductId>>,
    categories: BTreeMap<String, BTreeSet<ProductId>>,
    sold: HashMap<SkuId, u64>,
    sales: HashMap<ProductId, u64>,
    by_sales: BTreeSet<(Reverse<u64>, ProductId)>,
}

/// One product in a listing.
#[derive(Debug, Clone)]
pub struct Summary {
    pub product_id: ProductId,
    pub product: Arc<Product>,
    pub sales: u64,
}

/// Search parameters of a listing.
#[derive(Debug, Default)]
pub struct Query<'a> {
    pub q: Option<&'a str>,
    pub category: Option<&'a str>,
    pub after: Option<&'a ProductId>,
    pub limit: usize,
}

pub struct CatalogIndex {
    inner: RwLock<Index>,
}

impl Default for CatalogIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl CatalogIndex {
    pub fn new() -> Self {
        Self {
            inner: RwLock::new(Index::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a product.
    pub fn upsert(&self, id: &ProductId, product: Product) {
        self.write().upsert(id, product);
    }

    /// Records a SKU's stock view; only a change of `sold` touches the index.
    pub fn record_stock(&self, sku: &SkuId, view: &StockView) {
        if self.read().sold.get(sku).copied().unwrap_or(0) == view.sold {
            return;
        }
        self.write().record_sold(sku, view.sold);
    }

    pub fn get(&self, id: &ProductId) -> Option<Summary> {
        let index = self.read();
        index.products.get(id).map(|e| Summary {
            product_id: id.clone(),
            product: e.product.clone(),
            sales: index.sales.get(id).copied().unwrap_or(0),
        })
    }

    pub fn owner_of(&self, sku: &SkuId) -> Option<ProductId> {
        self.read().sku_owner.get(sku).cloned()
    }

    /// A page of products (by id) matching the query; and whether more follow.
    pub fn list(&self, query: &Query<'_>) -> (Vec<Summary>, bool) {
        let index = self.read();
        let after = query
            .after
            .map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        let wanted = query.q.map(query_words).unwrap_or_default();
        let category = query
            .category
            .map(crate::domain::catalog::normalise_category);
        let empty = BTreeSet::new();
        let in_category = category
            .as_ref()
            .map(|c| index.categories.get(c).unwrap_or(&empty));
        let range = (after, Bound::Unbounded);
        let take = query.limit + 1;
        let ids: Vec<ProductId> = if wanted.is_empty() {
            match in_category {
                Some(cat) => cat.range(range).take(take).cloned().collect(),
                None => index
                    .products
                    .range(range)
                    .take(take)
                    .map(|(id, _)| id.clone())
                    .collect(),
            }
        } else if index.estimate(&index.search, &wanted) > SCAN_BY_SALES_ABOVE {
            // Common words: matches are dense, so walking products in page order finds a page
            // after a few entries instead of collecting every match first.
            let matches = |id: &ProductId| {
                index.products.get(id).is_some_and(|e| {
                    wanted
                        .iter()
                        .all(|w| e.search_tokens.iter().any(|t| t.starts_with(w.as_str())))
                })
            };
            match in_category {
                Some(cat) => cat
                    .range(range)
                    .filter(|id| matches(id))
                    .take(take)
                    .cloned()
                    .collect(),
                None => index
                    .products
                    .range(range)
                    .map(|(id, _)| id)
                    .filter(|id| matches(id))
                    .take(take)
                    .cloned()
                    .collect(),
            }
        } else {
            let found = index.matching(&index.search, &wanted);
            found
                .range(range)
                .filter(|id| in_category.is_none_or(|cat| cat.contains(*id)))
                .take(take)
                .cloned()
                .collect()
        };
        let mut page: Vec<Summary> = ids
            .into_iter()
            .filter_map(|id| {
                let e = index.products.get(&id)?;
                Some(Summary {
                    sales: index.sales.get(&id).copied().unwrap_or(0),
                    product: e.product.clone(),
                    product_id: id,
                })
            })
            .collect();
        let more = page.len() > query.limit;
        page.truncate(query.limit);
        (page, more)
    }

    /// The `limit` products with the most units sold, most first (ties by id); products that
    /// never sold are left out.
    pub fn best_sellers(&self, limit: usize) -> Vec<Summary> {
        let index = self.read();
        index
            .by_sales
            .iter()
            .take_while(|(Reverse(sales), _)| *sales > 0)
            .take(limit)
            .filter_map(|(Reverse(sales), id)| {
                Some(Summary {
                    product_id: id.clone(),
                    product: index.products.get(id)?.product.clone(),
                    sales: *sales,
                })
            })
            .collect()
    }

    /// Product names that have words starting with every word of `q`, best-selling first.
    pub fn suggest(&self, q: &str, limit: usize) -> Vec<String> {
        let wanted = query_words(q);
        if wanted.is_empty() || limit == 0 {
            return Vec::new();
        }
        let index = self.read();
        let sizes: usize = wanted
            .iter()
            .map(|t| {
                index
                    .prefix_range(&index.names, t)
                    .map(|(_, s)| s.len())
                    .sum::<usize>()
            })
            .min()
            .unwrap_or(0);
        let mut names: Vec<String> = Vec::with_capacity(limit);
        let push = |entry: &Entry, names: &mut Vec<String>| {
            if !names.contains(&entry.product.name) {
                names.push(entry.product.name.clone());
            }
        };
        let matches = |entry: &Entry| {
            wanted
                .iter()
                .all(|w| entry.name_tokens.iter().any(|t| t.starts_with(w.as_str())))
        };
        if sizes > SCAN_BY_SALES_ABOVE {
            // Common prefix: best-sellers come first, so the walk stops early.
            for (_, id) in &index.by_sales {
                let Some(entry) = index.products.get(id) else {
                    continue;
                };
                if matches(entry) {
                    push(entry, &mut names);
                    if names.len() == limit {
                        break;
                    }
                }
            }
            return names;
        }
        let found = index.matching(&index.names, &wanted);
        let mut ranked: Vec<(Reverse<u64>, &str, &ProductId)> = found
            .iter()
            .filter_map(|id| {
                let e = index.products.get(id)?;
                Some((
                    Reverse(index.sales.get(id).copied().unwrap_or(0)),
                    e.product.name.as_str(),
                    id,
                ))
            })
            .collect();
        ranked.sort_unstable();
        for (_, _, id) in ranked {
            if let Some(entry) = index.products.get(id) {
                push(entry, &mut names);
                if names.len() == limit {
                    break;
                }
            }
        }
        names
    }

    /// Every category with its number of products.
    pub fn categories(&self) -> Vec<(String, usize)> {
        self.read()
            .categories
            .iter()
            .map(|(c, ids)| (c.clone(), ids.len()))
            .collect()
    }
}

impl Index {
    fn prefix_range<'a>(
        &self,
        map: &'a BTreeMap<String, BTreeSet<ProductId>>,
        prefix: &str,
    ) -> impl Iterator<Item = (&'a String, &'a BTreeSet<ProductId>)> {
        let owned = prefix.to_string();
        map.range(prefix.to_string()..)
            .take_while(move |(t, _)| t.starts_with(owned.as_str()))
    }

    /// How many products the most selective wanted word matches at most.
    fn estimate(&self, map: &BTreeMap<String, BTreeSet<ProductId>>, wanted: &[String]) -> usize {
        wanted
            .iter()
            .map(|w| {
                self.prefix_range(map, w)
                    .map(|(_, s)| s.len())
                    .sum::<usize>()
            })
            .min()
            .unwrap_or(0)
    }

    /// Products having, for every wanted word, a word that starts with it.
    fn matching(
        &self,
        map: &BTreeMap<String, BTreeSet<ProductId>>,
        wanted: &[String],
    ) -> BTreeSet<ProductId> {
        let mut result: Option<BTreeSet<ProductId>> = None;
        for w in wanted {
            let mut these = BTreeSet::new();
            for (_, ids) in self.prefix_range(map, w) {
                match &result {
                    Some(prev) => these.extend(ids.iter().filter(|id| prev.contains(*id)).cloned()),
                    None => these.extend(ids.iter().cloned()),
                }
            }
            result = Some(these);
        }
        result.unwrap_or_default()
    }

    fn upsert(&mut self, id: &ProductId, product: Product) {
        self.remove(id);
        let name_tokens = tokens(&product.name);
        let mut search_tokens = name_tokens.clone();
        search_tokens.extend(tokens(&product.description));
        search_tokens.extend(tokens(&product.category));
        search_tokens.sort();
        search_tokens.dedup();
        for t in &name_tokens {
            self.names.entry(t.clone()).or_default().insert(id.clone());
        }
        for t in &search_tokens {
            self.search.entry(t.clone()).or_default().insert(id.clone());
        }
        self.categories
            .entry(product.category.clone())
            .or_default()
            .insert(id.clone());
        let mut sales = 0;
        for sku in &product.skus {
            self.sku_owner.insert(sku.sku_id.clone(), id.clone());
            sales += self.sold.get(&sku.sku_id).copied().unwrap_or(0);
        }
        self.sales.insert(id.clone(), sales);
        self.by_sales.insert((Reverse(sales), id.clone()));
        self.products.insert(
            id.clone(),
            Entry {
                product: Arc::new(product),
                name_tokens,
                search_tokens,
            },
        );
    }

    fn remove(&mut self, id: &ProductId) {
        let Some(old) = self.products.remove(id) else {
            return;
        };
        for (map, toks) in [
            (&mut self.names, &old.name_tokens),
            (&mut self.search, &old.search_tokens),
        ] {
            for t in toks {
                if let Some(set) = map.get_mut(t) {
                    set.remove(id);
                    if set.is_empty() {
                        map.remove(t);
                    }
                }
            }
        }
        if let Some(set) = self.categories.get_mut(&old.product.category) {
            set.remove(id);
            if set.is_empty() {
                self.categories.remove(&old.product.category);
            }
        }
        if let Some(sales) = self.sales.remove(id) {
            self.by_sales.remove(&(Reverse(sales), id.clone()));
        }
    }

    fn record_sold(&mut self, sku: &SkuId, sold: u64) {
        let before = self.sold.insert(sku.clone(), sold).unwrap_or(0);
        let Some(owner) = self.sku_owner.get(sku).cloned() else {
            return;
        };
        let old = self.sales.get(&owner).copied().unwrap_or(0);
        let new = (old + sold).saturating_sub(before);
        self.by_sales.remove(&(Reverse(old), owner.clone()));
        self.by_sales.insert((Reverse(new), owner.clone()));
        self.sales.insert(owner, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::SkuSpec;
    use crate::domain::time::Timestamp;

    fn product(name: &str, category: &str, sku: &str) -> Product {
        Product {
            name: name.into(),
            description: String::new(),
            category: category.into(),
            thumbnail: None,
            skus: vec![SkuSpec {
                sku_id: SkuId::parse(sku).unwrap(),
                options: Default::default(),
                price: 1000,
            }],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn pid(s: &str) -> ProductId {
        ProductId::parse(s).unwrap()
    }

    fn sold(n: u64) -> StockView {
        StockView {
            available: 10,
            reserved: 0,
            sold: n,
            ..StockView::default()
        }
    }

    fn index() -> CatalogIndex {
        let idx = CatalogIndex::new();
        idx.upsert(&pid("p1"), product("Red Cotton Tee", "tops", "s1"));
        idx.upsert(&pid("p2"), product("Blue Denim Jacket", "outer", "s2"));
        idx.upsert(&pid("p3"), product("빨간 반팔 티셔츠", "tops", "s3"));
        idx.upsert(&pid("p4"), product("Red Rain Coat", "outer", "s4"));
        idx
    }

    fn ids(page: &[Summary]) -> Vec<&str> {
        page.iter().map(|s| s.product_id.as_str()).collect()
    }

    #[test]
    fn search_matches_word_prefixes_and_filters_by_category() {
        let idx = index();
        let q = |q: &str, category: Option<&str>| {
            let (page, _) = idx.list(&Query {
                q: Some(q),
                category,
                after: None,
                limit: 10,
            });
            ids(&page).into_iter().map(String::from).collect::<Vec<_>>()
        };
        assert_eq!(q("red", None), vec!["p1", "p4"]);
        assert_eq!(q("RED co", None), vec!["p1", "p4"], "cotton and coat");
        assert_eq!(q("red", Some("Outer")), vec!["p4"]);
        assert_eq!(q("티셔", None), vec!["p3"]);
        assert!(q("nothing", None).is_empty());
    }

    #[test]
    fn pages_follow_the_cursor() {
        let idx = index();
        let (first, more) = idx.list(&Query {
            limit: 3,
            ..Query::default()
        });
        assert_eq!(ids(&first), vec!["p1", "p2", "p3"]);
        assert!(more);
        let after = first.last().unwrap().product_id.clone();
        let (rest, more) = idx.list(&Query {
            after: Some(&after),
            limit: 3,
            ..Query::default()
        });
        assert_eq!(ids(&rest), vec!["p4"]);
        assert!(!more);
    }

    #[test]
    fn suggestions_rank_by_sales_and_follow_updates() {
        let idx = index();
        assert_eq!(
            idx.suggest("re", 5),
            vec!["Red Cotton Tee", "Red Rain Coat"]
        );
        idx.record_stock(&SkuId::parse("s4").unwrap(), &sold(7));
        assert_eq!(
            idx.suggest("re", 5),
            vec!["Red Rain Coat", "Red Cotton Tee"]
        );
        assert_eq!(idx.suggest("re", 1), vec!["Red Rain Coat"]);
        assert_eq!(idx.get(&pid("p4")).unwrap().sales, 7);
        idx.upsert(&pid("p4"), product("Green Rain Coat", "outer", "s4"));
        assert_eq!(idx.suggest("re", 5), vec!["Red Cotton Tee"]);
        assert_eq!(
            idx.get(&pid("p4")).unwrap().sales,
            7,
            "sales survive a rename"
        );
        assert_eq!(idx.suggest("빨", 5), vec!["빨간 반팔 티셔츠"]);
        assert!(idx.suggest("", 5).is_empty());
    }

    #[test]
    fn common_prefixes_walk_best_sellers() {
        let idx = CatalogIndex::new();
        for i in 0..(SCAN_BY_SALES_ABOVE + 100) {
            let (p, s) = (format!("p{i:05}"), format!("s{i:05}"));
            idx.upsert(&pid(&p), product(&format!("Apple {i}"), "fruit", &s));
        }
        idx.record_stock(&SkuId::parse("s00042").unwrap(), &sold(3));
        idx.record_stock(&SkuId::parse("s00007").unwrap(), &sold(9));
        assert_eq!(idx.suggest("a", 3), vec!["Apple 7", "Apple 42", "Apple 0"]);
    }

    #[test]
    fn dense_searches_page_in_id_order_with_filters() {
        let idx = CatalogIndex::new();
        for i in 0..(SCAN_BY_SALES_ABOVE + 100) {
            let category = if i % 2 == 0 { "even" } else { "odd" };
            let (p, s) = (format!("p{i:05}"), format!("s{i:05}"));
            idx.upsert(&pid(&p), product(&format!("Apple {i}"), category, &s));
        }
        let (page, more) = idx.list(&Query {
            q: Some("app"),
            category: Some("odd"),
            after: None,
            limit: 3,
        });
        assert_eq!(ids(&page), vec!["p00001", "p00003", "p00005"]);
        assert!(more);
        let after = pid("p00005");
        let (page, _) = idx.list(&Query {
            q: Some("ap"),
            category: None,
            after: Some(&after),
            limit: 2,
        });
        assert_eq!(ids(&page), vec!["p00006", "p00007"]);
        let (page, _) = idx.list(&Query {
            q: Some("apple 61"),
            category: None,
            after: None,
            limit: 5,
        });
        assert_eq!(ids(&page), vec!["p00061", "p00610", "p00611"]);
    }

    #[test]
    fn categories_count_products() {
        assert_eq!(
            index().categories(),
            vec![("outer".to_string(), 2), ("tops".to_string(), 2)]
        );
    }
}
