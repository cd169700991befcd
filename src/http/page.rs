//! Pages of a list the caller's own entity holds whole, sorted by id (a wallet, a wishlist):
//! API.md's `?limit=` (default 20, at most 100) and `?cursor=` (the last id of the previous
//! page), answered as `{items, next_cursor}`.

use crate::http::error::ApiError;

/// Items of a page unless `?limit=` asks, and the most it may ask (API.md's conventions).
const DEFAULT: usize = 20;
const MAX: usize = 100;

/// The page of `sorted` (ascending by id) after `cursor`, at most `limit` long, and the
/// cursor of the next page (`None` on the last). `parse` reads a cursor back into an id:
/// one that does not parse is `400 invalid_cursor`; `limit` 0 is `400 invalid_query`.
pub fn after<K: Ord + ToString, T>(
    sorted: impl IntoIterator<Item = (K, T)>,
    cursor: Option<&str>,
    limit: Option<usize>,
    parse: impl FnOnce(String) -> Option<K>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = crate::http::catalog::limit(limit, DEFAULT, MAX)?;
    let after = match cursor {
        Some(raw) => Some(parse(raw.to_owned()).ok_or_else(ApiError::invalid_cursor)?),
        None => None,
    };
    let mut rest = sorted
        .into_iter()
        .filter(|(id, _)| after.as_ref().is_none_or(|a| id > a))
        .peekable();
    let mut page = Vec::new();
    let mut last = None;
    while page.len() < limit {
        let Some((id, item)) = rest.next() else {
            break;
        };
        page.push(item);
        last = Some(id);
    }
    let next = rest.peek().and(last).map(|id| id.to_string());
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<(u32, u32)> {
        (1..=n).map(|i| (i, i * 10)).collect()
    }

    #[test]
    fn given_a_list_when_paged_then_every_item_comes_once_in_order() {
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let parse = |raw: String| raw.parse().ok();
            let (page, next) = after(ids(45), cursor.as_deref(), Some(20), parse).unwrap();
            assert!(page.len() <= 20);
            seen.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (1..=45).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn given_a_bad_cursor_or_limit_then_400() {
        let parse = |raw: String| raw.parse::<u32>().ok();
        let e = after(ids(3), Some("x"), None, parse).unwrap_err();
        assert_eq!(e.code, "invalid_cursor");
        let e = after(ids(3), None, Some(0), |r: String| r.parse().ok()).unwrap_err();
        assert_eq!(e.code, "invalid_query");
        let (page, next) = after(ids(3), None, None, |r: String| r.parse().ok()).unwrap();
        assert_eq!(
            (page.len(), next),
            (3, None),
            "the default page holds all three"
        );
    }
}
