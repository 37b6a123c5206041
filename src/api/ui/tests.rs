use super::*;

#[test]
fn asset_names_carry_their_content_hash_and_the_page_names_them() {
    let app = ASSETS
        .iter()
        .find(|a| a.name == "app.js")
        .expect("app.js is embedded");
    assert_eq!(
        app.served,
        format!("app.{:08x}.js", crc32fast::hash(app.body))
    );
    for a in ASSETS.iter() {
        assert!(
            INDEX.contains(&format!("/ui/{}", a.served)),
            "{} not linked",
            a.name
        );
    }
    let page = INDEX.replace("{{token}}", "none");
    assert!(!page.contains("{{"), "a placeholder was left in the page");
    // No inline script: every <script> loads a file.
    assert!(!INDEX.contains("<script>"));
}

#[test]
fn if_none_match_names_a_tag_alone_in_a_list_weakly_or_with_a_star() {
    let tag = "\"18c2a\"";
    assert!(names_tag("\"18c2a\"", tag));
    assert!(names_tag("\"1\", W/\"18c2a\"", tag));
    assert!(names_tag("*", tag));
    assert!(!names_tag("\"18c2b\"", tag));
    assert!(!names_tag("18c2a", tag), "a tag is quoted");
    assert!(!names_tag("", tag));
}
