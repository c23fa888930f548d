//! The differential test of the `.pth` grammar: fixture files that exercise every rule that
//! differs between versions (hidden names, BOM, CR/LF, the `splitlines` set, comments, blank
//! lines, `import<TAB>`, leading spaces, relative/absolute/duplicate/missing paths, a failing
//! line) are planted in a venv of every interpreter present. sitegate's prediction
//! (`scan --format json`: `sys.path` and the code lines) must equal what the interpreter does,
//! and the guarded start must do the same as the unguarded one.

use std::collections::BTreeSet;

use serde_json::Value;
use sitegate_tests::{pythons, run, OutputText, Sandbox, Venv};

fn marker(name: &str, line: usize) -> String {
    format!("import builtins; builtins.__dict__.setdefault('_sg_seen', []).append('{name}:{line}')")
}

fn plant(sandbox: &Sandbox, venv: &Venv) {
    let outside = sandbox.path().join("outside");
    let absolute = sandbox.path().join("absolute");
    for dir in [&outside, &absolute] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(venv.site_packages.join("sub")).unwrap();
    std::fs::create_dir_all(venv.site_packages.join("extra_d2")).unwrap();
    std::fs::create_dir_all(venv.site_packages.join("  lead")).unwrap();
    std::fs::write(venv.site_packages.join("a_file"), "").unwrap();
    let files: Vec<(&str, String)> = vec![
        ("A.pth", format!("{}\nsub\n# comment\n  # not a comment\n   \n\nsub\n", marker("A.pth", 1))),
        ("_b.pth", format!("{}\r\nextra_d2\r{}\r", marker("_b.pth", 1), marker("_b.pth", 3))),
        ("bom.pth", format!("\u{feff}{}\n", marker("bom.pth", 1))),
        ("ff.pth", format!("nothing\x0c{}\n", marker("ff.pth", 2))),
        ("u2028.pth", format!("nothing\u{2028}{}\n", marker("u2028.pth", 2))),
        ("vt.pth", format!("nothing\x0b{}\x1c{}\n", marker("vt.pth", 2), marker("vt.pth", 3))),
        (".hidden.pth", format!("{}\n", marker(".hidden.pth", 1))),
        ("tab.pth", "import\tbuiltins; builtins.__dict__.setdefault('_sg_seen', []).append('tab.pth:1')\n".to_owned()),
        ("fail.pth", format!("{}\nimport sitegate_no_such_module\n{}\n", marker("fail.pth", 1), marker("fail.pth", 3))),
        (
            "paths.pth",
            format!(
                "{}\n../../../../outside\nsub   \nmissing_dir\na_file\n  lead\nImport x\n import y\n{}\n",
                absolute.display(),
                absolute.display()
            ),
        ),
    ];
    for (name, text) in files {
        venv.write(name, text);
    }
}

const PRINT_STATE: &str =
    "import sys, builtins, json; print(json.dumps({'path': sys.path[1:], 'seen': getattr(builtins, '_sg_seen', [])}))";

fn first_occurrences(seen: &[String]) -> Vec<String> {
    let mut unique = Vec::new();
    for item in seen {
        if !unique.contains(item) {
            unique.push(item.clone());
        }
    }
    unique
}

#[test]
fn predictions_match_every_interpreter() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        plant(&sandbox, &venv);
        let policy = sandbox.path().join("allow-all.toml");
        std::fs::write(&policy, "[[allow]]\nfile = \"*\"\n").unwrap();

        let actual = run(sandbox.command(&venv.python).args(["-c", PRINT_STATE]));
        assert!(
            actual.status.success(),
            "{}: {}",
            python.label,
            actual.stderr_text()
        );
        let actual: Value = serde_json::from_str(actual.stdout_text().trim()).unwrap();

        let scan = run(sandbox
            .sitegate()
            .arg("--policy")
            .arg(&policy)
            .args(["scan", "--format", "json", "--python"])
            .arg(&venv.python));
        assert_eq!(
            scan.status.code(),
            Some(0),
            "{}: {}",
            python.label,
            scan.stderr_text()
        );
        let scan: Value = serde_json::from_str(&scan.stdout_text()).unwrap();

        assert_eq!(
            actual["path"], scan["sys_path"],
            "{}: predicted sys.path differs",
            python.label
        );

        let seen: Vec<String> = serde_json::from_value(actual["seen"].clone()).unwrap();
        let predicted: Vec<String> = scan["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["kind"] == "pth-code")
            .filter_map(|h| {
                let text = h["text"].as_str()?;
                let start = text.find(".append('")? + ".append('".len();
                Some(text[start..].trim_end_matches(['\'', ')', '\n']).to_owned())
            })
            .filter(|m| m != "fail.pth:3")
            .collect();
        assert_eq!(
            first_occurrences(&seen),
            predicted,
            "{}: executed lines differ",
            python.label
        );
        let unique: BTreeSet<_> = seen.iter().collect();
        assert_eq!(
            seen.len(),
            2 * unique.len(),
            "{}: a venv runs each import line twice",
            python.label
        );

        let guarded = run(sandbox
            .guarded(Some(&policy), &venv.python)
            .args(["-c", PRINT_STATE]));
        assert!(
            guarded.status.success(),
            "{}: {}",
            python.label,
            guarded.stderr_text()
        );
        let guarded: Value = serde_json::from_str(guarded.stdout_text().trim()).unwrap();
        assert_eq!(guarded, actual, "{}: guarded start differs", python.label);
    }
}
