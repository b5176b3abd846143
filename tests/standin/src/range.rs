//! Heroku-style list ranges: `Range: <field> [[]start..[end][; max=N][, order=asc|desc]`.
//!
//! A list longer than the page gets `206 Partial Content` and a `Next-Range`
//! header; the client repeats the request with `Range: <Next-Range>`. The
//! default page is 200 items and the maximum 1000, as Heroku documents.
//!
//! NOTE: Heroku documents neither the exact `Content-Range` text nor the
//! response to an invalid range, which gets `416` here. The grammar above
//! fits Heroku's documented examples, such as `id ..; max=10`.

pub(crate) const DEFAULT_PAGE_SIZE: usize = 200;
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// A parsed `Range` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RangeRequest {
    pub field: String,
    /// First value to list, and whether it is excluded (`]` prefix).
    pub start: Option<(String, bool)>,
    /// Last value to list, inclusive.
    pub end: Option<String>,
    pub max: usize,
    pub descending: bool,
}

impl RangeRequest {
    /// Returns the range used without a `Range` header: all items, ordered by the first field.
    pub fn default_for(fields: &[&str]) -> RangeRequest {
        RangeRequest {
            field: fields.first().copied().unwrap_or("id").to_string(),
            start: None,
            end: None,
            max: DEFAULT_PAGE_SIZE,
            descending: false,
        }
    }

    /// Parses a `Range` value whose field must be one of `fields`. Returns
    /// `None` for an invalid value. A missing field means the first of `fields`,
    /// and a `max` above 1000 is lowered to 1000.
    pub fn parse(header: &str, fields: &[&str]) -> Option<RangeRequest> {
        let mut range = RangeRequest::default_for(fields);
        let (spec, options) = header.trim().split_once(';').unwrap_or((header.trim(), ""));

        // 1. The field and the `start..end` part.
        let spec = spec.trim();
        let bounds = match spec.split_once(char::is_whitespace) {
            Some((field, bounds)) => {
                range.field = field.to_string();
                bounds.trim()
            }
            None if spec.contains("..") => spec,
            None => {
                range.field = spec.to_string();
                ".."
            }
        };
        if !fields.contains(&range.field.as_str()) {
            return None;
        }
        let (start, end) = bounds.split_once("..")?;
        range.start = match start.strip_prefix(']') {
            Some(excluded) => Some((excluded.to_string(), true)),
            None if start.is_empty() => None,
            None => Some((start.to_string(), false)),
        };
        range.end = Some(end.to_string()).filter(|end| !end.is_empty());

        // 2. Options, separated by `;` or `,`.
        for option in options
            .split([';', ','])
            .map(str::trim)
            .filter(|option| !option.is_empty())
        {
            let (key, value) = option.split_once('=')?;
            match (key.trim(), value.trim()) {
                ("max", max) => {
                    let max: usize = max.parse().ok()?;
                    if max == 0 {
                        return None;
                    }
                    range.max = max.min(MAX_PAGE_SIZE);
                }
                ("order", "asc") => range.descending = false,
                ("order", "desc") => range.descending = true,
                _ => return None,
            }
        }
        Some(range)
    }

    fn options_suffix(&self) -> String {
        if self.descending {
            format!("; max={}, order=desc", self.max)
        } else {
            format!("; max={}", self.max)
        }
    }
}

/// One page of a list, with the range headers to send.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub content_range: Option<String>,
    /// Set when items remain after this page; the status is then `206`.
    pub next_range: Option<String>,
}

/// Sorts `items` by the range's field, whose value `field_value` returns,
/// applies the bounds and cuts one page.
pub(crate) fn paginate<T>(
    mut items: Vec<T>,
    range: &RangeRequest,
    field_value: impl Fn(&T, &str) -> String,
) -> Page<T> {
    let key = |item: &T| field_value(item, &range.field);
    items.sort_by_key(key);
    if range.descending {
        items.reverse();
    }

    let in_bounds = |value: &str| {
        let after_start = match &range.start {
            None => true,
            Some((start, exclusive)) => {
                let ordering = value.cmp(start.as_str());
                let ordering = if range.descending {
                    ordering.reverse()
                } else {
                    ordering
                };
                ordering.is_gt() || (!exclusive && ordering.is_eq())
            }
        };
        let before_end = match &range.end {
            None => true,
            Some(end) => {
                let ordering = value.cmp(end.as_str());
                let ordering = if range.descending {
                    ordering.reverse()
                } else {
                    ordering
                };
                ordering.is_le()
            }
        };
        after_start && before_end
    };
    let mut selected: Vec<T> = items
        .into_iter()
        .filter(|item| in_bounds(&key(item)))
        .collect();

    let truncated = selected.len() > range.max;
    selected.truncate(range.max);

    let first = selected.first().map(key);
    let last = selected.last().map(key);
    let content_range = match (&first, &last) {
        (Some(first), Some(last)) => Some(format!(
            "{} {first}..{last}{}",
            range.field,
            range.options_suffix()
        )),
        _ => None,
    };
    let next_range = match (&last, truncated) {
        (Some(last), true) => Some(format!(
            "{} ]{last}..{}",
            range.field,
            range.options_suffix()
        )),
        _ => None,
    };
    Page {
        items: selected,
        content_range,
        next_range,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(page: &Page<&'static str>) -> Vec<&'static str> {
        page.items.clone()
    }

    fn by_value(item: &&'static str, _field: &str) -> String {
        item.to_string()
    }

    #[test]
    fn parse_accepts_documented_examples() {
        let range = RangeRequest::parse("id ..; max=10;", &["id", "name"]).unwrap();
        assert_eq!(range.field, "id");
        assert_eq!(range.max, 10);
        assert_eq!(range.start, None);

        let range =
            RangeRequest::parse("name ]b..; max=2000, order=desc", &["id", "name"]).unwrap();
        assert_eq!(range.start, Some(("b".to_string(), true)));
        assert_eq!(range.max, MAX_PAGE_SIZE);
        assert!(range.descending);
    }

    #[test]
    fn parse_rejects_unknown_field_and_zero_max() {
        assert_eq!(RangeRequest::parse("email ..", &["id", "name"]), None);
        assert_eq!(RangeRequest::parse("id ..; max=0", &["id"]), None);
        assert_eq!(RangeRequest::parse("id ..; max=ten", &["id"]), None);
    }

    #[test]
    fn next_range_continues_after_last_item() {
        let items = vec!["c", "a", "b"];
        let range = RangeRequest::parse("id ..; max=2", &["id"]).unwrap();
        let first = paginate(items.clone(), &range, by_value);
        assert_eq!(ids(&first), ["a", "b"]);
        assert_eq!(first.next_range.as_deref(), Some("id ]b..; max=2"));
        assert_eq!(first.content_range.as_deref(), Some("id a..b; max=2"));

        let range = RangeRequest::parse(first.next_range.as_deref().unwrap(), &["id"]).unwrap();
        let second = paginate(items, &range, by_value);
        assert_eq!(ids(&second), ["c"]);
        assert_eq!(second.next_range, None);
    }
}
