use std::collections::BTreeSet;

use super::render;
use crate::report::aggregate::tests::report;

fn attribute_values<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!("{name}=\"");
    page.match_indices(&key)
        .map(|(at, _)| {
            let rest = &page[at + key.len()..];
            &rest[..rest.find('"').unwrap_or(rest.len())]
        })
        .collect()
}

#[test]
fn the_page_is_self_contained_and_every_link_lands() {
    let page = render(&report());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script"), "no script");
    assert!(!page.contains("src="), "no external asset");
    assert!(!page.contains("url("), "no asset from the style sheet");
    assert!(
        page.contains("content=\"default-src 'none'; style-src 'unsafe-inline'\""),
        "a policy that lets nothing load"
    );
    let ids: BTreeSet<&str> = attribute_values(&page, "id").into_iter().collect();
    let links = attribute_values(&page, "href");
    assert!(!links.is_empty());
    for link in links {
        let target = link
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{link} leaves the page"));
        assert!(ids.contains(target), "{link} has no anchor");
    }
    for id in [
        "grant-1",
        "grant-7",
        "time-web-ops",
        "standing",
        "integrity",
    ] {
        assert!(ids.contains(id), "{id}");
    }
    assert_eq!(page.matches("<svg").count(), 3, "three charts");
}

#[test]
fn what_users_wrote_is_escaped() {
    let mut r = report();
    r.break_glass[0].reason = "<script>alert(1)</script> & \"x\"".into();
    r.denials.by_reason[0].key = "<img onerror=x>".into();
    let page = render(&r);
    assert!(!page.contains("<script>alert"), "reason not escaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp;"));
    assert!(!page.contains("<img"));
}
