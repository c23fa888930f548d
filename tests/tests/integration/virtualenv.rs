//! uv's `_virtualenv` hook, in venvs the pinned uv 0.13.9 makes for each CPython before 3.10
//! present (uv writes the hook only for those). The baseline knows the module uv writes by its
//! hash and lets the hook run; the sandbox records what the hook does, a finder put on
//! `sys.meta_path`, which cannot be applied without running the hook.

use std::process::Output;

use serde_json::{json, Value};
use sitegate_policy::baseline::{match_baseline, Requirement};
use sitegate_policy::{HookFacts, HookKind};
use sitegate_tests::{pythons, run, sha256_hex, OutputText, Python, Sandbox, Venv};

use crate::sandbox::{explain_hook, hooks_of, outcome_name, prepared};

/// The interpreters uv writes `_virtualenv` for: uv 0.13.9 writes no `_virtualenv.pth` for
/// CPython 3.10 and later.
fn targets() -> Vec<Python> {
    let found: Vec<Python> = pythons()
        .into_iter()
        .filter(|p| p.version < (3, 10))
        .collect();
    if found.is_empty() {
        eprintln!("skipping: no CPython before 3.10, the versions uv writes `_virtualenv` for");
    }
    found
}

/// The SHA-256 hashes of `_virtualenv.py` that the baseline's `virtualenv` entry accepts.
fn pinned_module_hashes() -> Vec<&'static str> {
    let facts = HookFacts {
        kind: HookKind::PthCode,
        file_name: "_virtualenv.pth",
        line_text: Some("import _virtualenv"),
        sha256: "",
        owner: None,
        signals: &[],
    };
    let found = match_baseline(&facts).expect("the baseline knows `import _virtualenv`");
    assert_eq!(found.name, "virtualenv");
    found
        .requires
        .iter()
        .find_map(|requirement| match requirement {
            Requirement::Pinned { file, sha256 } if file == "_virtualenv.py" => {
                Some(sha256.to_vec())
            }
            _ => None,
        })
        .expect("the `virtualenv` entry pins `_virtualenv.py`")
}

/// The `_virtualenv.pth` hook in a document's hooks.
fn virtualenv_hook(hooks: &[Value]) -> Value {
    hooks
        .iter()
        .find(|h| h["path"].as_str().unwrap().ends_with("/_virtualenv.pth"))
        .unwrap_or_else(|| panic!("no `_virtualenv.pth` hook in {hooks:?}"))
        .clone()
}

fn texts(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// `sitegate exec` of the venv's interpreter, printing the module of the first finder on
/// `sys.meta_path`.
fn first_finder(sandbox: &Sandbox, venv: &Venv, flags: &[&str]) -> Output {
    run(sandbox
        .sitegate()
        .args(flags)
        .args(["exec", "--"])
        .arg(&venv.python)
        .args(["-c", "import sys; print(type(sys.meta_path[0]).__module__)"]))
}

#[test]
fn the_baseline_allows_the_hook_uv_writes() {
    let pinned = pinned_module_hashes();
    for python in targets() {
        let sandbox = Sandbox::new();
        let venv = sandbox.uv_venv(&python, "venv");
        let line = std::fs::read_to_string(venv.site_packages.join("_virtualenv.pth")).unwrap();
        assert_eq!(line.trim_end(), "import _virtualenv", "{}", python.label);
        let module = std::fs::read(venv.site_packages.join("_virtualenv.py")).unwrap();
        let hash = sha256_hex(&module);
        assert!(
            pinned.contains(&hash.as_str()),
            "uv wrote a `_virtualenv.py` for {} whose SHA-256 {hash} the baseline does not pin",
            python.label
        );

        let scan = run(sandbox
            .sitegate()
            .args(["scan", "--format", "json", "--python"])
            .arg(&venv.python));
        let hook = virtualenv_hook(&hooks_of(&scan));
        assert_eq!(hook["verdict"], "allowed", "{hook}");
        assert_eq!(hook["reason"], "baseline-hook", "{hook}");
        assert!(
            hook["message"].as_str().unwrap().contains("`virtualenv`"),
            "{hook}"
        );
        assert_eq!(scan.status.code(), Some(0), "{}", scan.stderr_text());

        // Allowed, the hook runs in the interpreter and its finder comes first; without the
        // baseline it is denied, and the finder is not there.
        let allowed = first_finder(&sandbox, &venv, &[]);
        assert_eq!(
            allowed.stdout_text(),
            "_virtualenv\n",
            "{}",
            allowed.stderr_text()
        );
        let denied = first_finder(&sandbox, &venv, &["--no-baseline"]);
        assert!(denied.status.success(), "{}", denied.stderr_text());
        assert_ne!(denied.stdout_text(), "_virtualenv\n");
        assert!(
            denied.stderr_text().contains("unknown-code-hook")
                && denied.stderr_text().contains("_virtualenv.pth"),
            "{}",
            denied.stderr_text()
        );
    }
}

/// A uv venv for the oldest interpreter uv writes `_virtualenv` for, with the guest prepared.
fn uv_venv_for_the_sandbox() -> Option<(Sandbox, Venv)> {
    let python = targets().into_iter().next()?;
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.uv_venv(&python, "venv");
    Some((sandbox, venv))
}

/// `sitegate explain` on the venv's `_virtualenv.pth`, under the sandbox's `policy.toml`.
fn explain_virtualenv(sandbox: &Sandbox, venv: &Venv, format: &str) -> Output {
    let hook_file = venv.site_packages.join("_virtualenv.pth");
    run(&mut explain_hook(sandbox, &venv.python, &hook_file, format))
}

#[test]
fn the_sandbox_records_the_finder_the_hook_installs() {
    let Some((sandbox, venv)) = uv_venv_for_the_sandbox() else {
        return;
    };
    let policy = sandbox.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[allow]]\nfile = \"_virtualenv.pth\"\nmode = \"sandbox\"\n",
    )
    .unwrap();
    let hooks = hooks_of(&explain_virtualenv(&sandbox, &venv, "json"));
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];

    // On Python 3, `_virtualenv.py` imports `contextlib`, `os` and `sys`, defines a finder and
    // puts one first on `sys.meta_path`. It reads no variable and touches nothing but its own
    // file.
    assert_eq!(outcome_name(hook), "completed", "{hook}");
    let trace = &hook["sandbox"]["trace"];
    let imports = texts(&trace["imports"]);
    for module in ["_virtualenv", "contextlib", "os", "sys"] {
        assert!(imports.contains(&module), "{module}: {imports:?}");
    }
    for nothing in [
        "environment_lookups",
        "connections",
        "name_lookups",
        "processes",
        "native_loads",
        "dynamic_code",
    ] {
        assert_eq!(trace[nothing], json!([]), "{nothing}: {trace}");
    }
    let files = trace["files_opened"].as_array().unwrap();
    assert!(
        files.iter().all(|f| f["mode"] == "r"
            && f["path"]
                .as_str()
                .unwrap()
                .starts_with(venv.site_packages.to_str().unwrap())),
        "{files:?}"
    );
    let module_file = venv.site_packages.join("_virtualenv.py");
    assert!(
        files
            .iter()
            .any(|f| f["path"] == module_file.to_str().unwrap()),
        "{files:?}"
    );

    let effects = &hook["sandbox"]["effects"];
    assert_eq!(
        effects["meta_path_added"],
        json!([{"module": "_virtualenv", "type_name": "_Finder", "position": 0}])
    );
    assert_eq!(effects["modules_loaded"], json!(["_virtualenv"]));
    for nothing in [
        "path_added",
        "path_removed",
        "path_hooks_added",
        "environment_set",
        "environment_removed",
    ] {
        assert_eq!(effects[nothing], json!([]), "{nothing}: {effects}");
    }
    assert_eq!(hook["verdict"], "denied");
    assert_eq!(hook["reason"], "untransplantable-hook");
    let message = hook["message"].as_str().unwrap();
    assert!(
        message.contains("`_virtualenv._Finder` on `sys.meta_path`"),
        "{message}"
    );

    // As unknown code without the baseline, the scan sends it to the sandbox and reaches the
    // same verdict.
    std::fs::write(&policy, "unknown-code = \"sandbox\"\n").unwrap();
    let scan = run(sandbox
        .sitegate()
        .arg("--policy")
        .arg(&policy)
        .args(["scan", "--no-baseline", "--format", "json", "--python"])
        .arg(&venv.python));
    assert_eq!(scan.status.code(), Some(1), "{}", scan.stderr_text());
    let hook = virtualenv_hook(&hooks_of(&scan));
    assert_eq!(hook["reason"], "untransplantable-hook", "{hook}");
    assert_eq!(hook["sandbox"]["mode"], "sandbox");
    assert_eq!(
        hook["sandbox"]["effects"]["meta_path_added"][0]["type_name"],
        "_Finder"
    );
}

#[test]
fn explain_reads_well_for_the_virtualenv_hook() {
    let Some((sandbox, venv)) = uv_venv_for_the_sandbox() else {
        return;
    };
    // The defaults: the baseline allows the hook, and `explain` says what the sandbox would
    // decide.
    std::fs::write(sandbox.path().join("policy.toml"), "").unwrap();
    let output = explain_virtualenv(&sandbox, &venv, "table");
    assert!(output.status.success(), "{}", output.stderr_text());
    let site_packages = venv.site_packages.display().to_string();
    insta::with_settings!({filters => vec![(site_packages.as_str(), "[SITE-PACKAGES]")]}, {
        insta::assert_snapshot!("explain_virtualenv", output.stdout_text());
    });
}
