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
