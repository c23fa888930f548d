//! The documentation stays true to the code: the policy template parses, and every
//! diagnostic code has its heading.

use std::path::Path;

use sitegate_policy::diagnostics::DIAGNOSTICS;
use sitegate_policy::model::{parse_policy, PolicyFormat};

fn docs() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))
}

#[test]
fn the_policy_template_parses() {
    let path = docs().join("sitegate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let policy = parse_policy(&text, &path, PolicyFormat::SitegateToml)
        .unwrap()
        .unwrap();
    assert!(policy.baseline);
    assert!(!policy.allow.is_empty() && !policy.deny.is_empty());
}

#[test]
fn every_diagnostic_code_has_a_heading() {
    let text = std::fs::read_to_string(docs().join("diagnostics.md")).unwrap();
    for diagnostic in DIAGNOSTICS {
        assert!(
            text.contains(&format!("## `{}`", diagnostic.code)),
            "docs/diagnostics.md lacks `{}`",
            diagnostic.code
        );
    }
    assert!(text.contains("## `untrusted-policy`"));
}
