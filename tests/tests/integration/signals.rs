//! Signals a scan reports beside the verdict: owned and unowned hooks, bytes that differ from
//! their `RECORD`, hidden files, obfuscated lines and path entries others can write to.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use sitegate_tests::{pythons, run, OutputText, Sandbox};

fn hook<'a>(document: &'a Value, file: &str) -> &'a Value {
    document["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"].as_str().unwrap().ends_with(file))
        .unwrap_or_else(|| panic!("no hook in {file}: {document}"))
}

fn signals(hook: &Value) -> Vec<&str> {
    hook["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect()
}

#[test]
fn scan_reports_signals() {
    let Some(python) = pythons().into_iter().find(|p| p.label.starts_with("3.11")) else {
        eprintln!("skipping: no pyenv Python 3.11 (its venvs ship setuptools)");
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", true);
    let open_dir = sandbox.path().join("world-writable");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    venv.write("shared.pth", format!("{}\n", open_dir.display()));
    venv.write(
        ".sneaky.pth",
        "import base64; exec(base64.b64decode(b'cGFzcw=='))\n",
    );

    let scan = run(sandbox
        .sitegate()
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python));
    assert_eq!(scan.status.code(), Some(1), "{}", scan.stderr_text());
    let document: Value = serde_json::from_str(&scan.stdout_text()).unwrap();

    let setuptools = hook(&document, "distutils-precedence.pth");
    assert_eq!(setuptools["owner"]["name"], "setuptools");
    assert_eq!(setuptools["verdict"], "allowed");
    assert!(signals(setuptools).is_empty(), "{setuptools}");

    let shared = hook(&document, "shared.pth");
    assert_eq!(shared["reason"], "writable-path");
    assert_eq!(signals(shared), ["unowned-hook", "writable-path"]);
    assert!(!document["sys_path"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == &Value::from(open_dir.display().to_string())));

    let sneaky = hook(&document, ".sneaky.pth");
    assert_eq!(sneaky["verdict"], "denied");
    assert_eq!(sneaky["line"], 1);
    assert_eq!(
        signals(sneaky),
        ["unowned-hook", "hidden-file", "obfuscated-hook"]
    );

    // Change one byte of a file that setuptools' RECORD lists: its hash no longer matches,
    // and the baseline (which matches by hash) no longer allows it.
    let precedence = venv.site_packages.join("distutils-precedence.pth");
    let mut bytes = std::fs::read(&precedence).unwrap();
    bytes.extend_from_slice(b"# appended\n");
    std::fs::write(&precedence, bytes).unwrap();
    let scan = run(sandbox
        .sitegate()
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python));
    let document: Value = serde_json::from_str(&scan.stdout_text()).unwrap();
    let tampered = hook(&document, "distutils-precedence.pth");
    assert_eq!(signals(tampered), ["hash-mismatch"]);
    assert_eq!(tampered["verdict"], "denied");
    assert_eq!(tampered["reason"], "unknown-code-hook");
}
