//! Interpreter discovery as users name interpreters: a console script whose `#!` line names a
//! venv's Python, a pyenv shim resolved without pyenv, and Debian's `dist-packages` layout
//! (read only: the test plants nothing in the machine's own directories).

use std::os::unix::fs::PermissionsExt;

use sitegate_tests::{pythons, run, OutputText, Sandbox};

#[test]
fn console_scripts_run_under_their_interpreter() {
    let Some(python) = pythons().into_iter().next() else {
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    venv.write("poison.pth", "import sys; print('hook ran')\n");
    let script = venv.root.join("bin/demo-tool");
    std::fs::write(
        &script,
        format!(
            "#!{}\nimport sys\nprint('tool', sys.argv[1:], sys.executable)\nsys.exit(4)\n",
            venv.python.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plain = run(sandbox.command(&script).args(["a", "-S"]));
    assert!(
        plain.stdout_text().starts_with("hook ran\nhook ran\n"),
        "{}",
        plain.stdout_text()
    );
    let guarded = run(sandbox.guarded(None, &script).args(["a", "-S"]));
    assert_eq!(
        guarded.stdout_text(),
        format!("tool ['a', '-S'] {}\n", venv.python.display()),
        "{}",
        guarded.stderr_text()
    );
    assert_eq!(guarded.status.code(), Some(4));
    assert!(
        guarded.stderr_text().contains("poison.pth:1"),
        "{}",
        guarded.stderr_text()
    );
}

#[test]
fn pyenv_shims_resolve_to_the_selected_version() {
    let root = std::env::var_os("PYENV_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pyenv")
        });
    let shims = root.join("shims");
    let Some(python) = pythons().into_iter().find(|p| p.path.starts_with(&root)) else {
        return;
    };
    if !shims.join("python3").is_file() {
        eprintln!("skipping: no pyenv shims at {}", shims.display());
        return;
    }
    let sandbox = Sandbox::new();
    let path = format!("{}:/usr/bin:/bin", shims.display());
    let output = run(sandbox
        .sitegate()
        .args([
            "exec",
            "--",
            "python3",
            "-c",
            "import sys, os; print(sys.executable); print(os.environ['PATH'].split(':')[0])",
        ])
        .env("PATH", &path)
        .env("PYENV_VERSION", &python.label));
    let bin = python.path.parent().unwrap();
    assert_eq!(
        output.stdout_text(),
        format!("{}\n{}\n", bin.join("python3").display(), bin.display()),
        "{}",
        output.stderr_text()
    );
}

#[test]
fn debian_dist_packages_are_site_directories() {
    let debian = std::path::Path::new("/usr/bin/python3.11");
    if !debian.is_file() {
        eprintln!("skipping: Debian's python3.11 is not present");
        return;
    }
    let sandbox = Sandbox::new();
    let scan = run(sandbox.sitegate().args([
        "scan",
        "--format",
        "json",
        "--python",
        "/usr/bin/python3.11",
    ]));
    assert!(
        scan.status.code() == Some(0) || scan.status.code() == Some(1),
        "{}",
        scan.stderr_text()
    );
    let document: serde_json::Value = serde_json::from_str(&scan.stdout_text()).unwrap();
    let dirs: Vec<&str> = document["interpreter"]["site_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert!(
        dirs.iter().any(|d| d.ends_with("dist-packages")),
        "{dirs:?}"
    );
    assert!(
        !dirs
            .iter()
            .any(|d| d.starts_with("/usr/lib/python3.11/site-packages")),
        "{dirs:?}"
    );
}
