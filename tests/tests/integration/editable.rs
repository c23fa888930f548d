//! Real editable installs with setuptools (`pip install -e`): a src layout that yields a path
//! line, and a flat layout that yields a finder import line. Both import under `sitegate exec`.

use std::path::Path;

use sitegate_tests::{pythons, run, OutputText, Sandbox};

fn project(root: &Path, name: &str, src_layout: bool) {
    let package_dir = if src_layout {
        root.join("src").join(name)
    } else {
        root.join(name)
    };
    std::fs::create_dir_all(&package_dir).unwrap();
    std::fs::write(package_dir.join("__init__.py"), format!("WHO = '{name}'\n")).unwrap();
    let packages = if src_layout {
        "[tool.setuptools.packages.find]\nwhere = [\"src\"]\n".to_owned()
    } else {
        format!("[tool.setuptools]\npackages = [\"{name}\"]\n")
    };
    std::fs::write(
        root.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"{name}\"\nversion = \"0.1\"\n\n{packages}"
        ),
    )
    .unwrap();
}

#[test]
fn editable_installs_import_under_sitegate() {
    let Some(python) = pythons().into_iter().find(|p| p.label.starts_with("3.11")) else {
        eprintln!("skipping: no pyenv Python 3.11 (its venvs ship setuptools)");
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", true);
    // setuptools 65 (the version this venv ships) builds editable wheels with `wheel`.
    let wheel = run(sandbox
        .command(&venv.python)
        .args(["-m", "pip", "install", "-q", "wheel"]));
    assert!(
        wheel.status.success(),
        "installing wheel: {}",
        wheel.stderr_text()
    );
    for (name, src_layout) in [("srcdemo", true), ("flatdemo", false)] {
        let root = sandbox.path().join("projects").join(name);
        project(&root, name, src_layout);
        let install = run(sandbox
            .command(&venv.python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--no-build-isolation",
                "--no-deps",
                "--no-index",
                "-e",
            ])
            .arg(&root));
        assert!(
            install.status.success(),
            "{name}: {}",
            install.stderr_text()
        );
    }
    let program = [
        "-c",
        "import srcdemo, flatdemo; print(srcdemo.WHO, flatdemo.WHO)",
    ];
    let guarded = run(sandbox.guarded(None, &venv.python).args(program));
    assert_eq!(
        guarded.stdout_text(),
        "srcdemo flatdemo\n",
        "{}",
        guarded.stderr_text()
    );
    assert!(
        !guarded.stderr_text().contains("warning"),
        "{}",
        guarded.stderr_text()
    );

    let scan = run(sandbox
        .sitegate()
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python));
    let document: serde_json::Value = serde_json::from_str(&scan.stdout_text()).unwrap();
    let hooks = document["hooks"].as_array().unwrap();
    let finder = hooks
        .iter()
        .find(|h| h["kind"] == "pth-code" && h["path"].as_str().unwrap().contains("flatdemo"))
        .expect("a finder line");
    assert_eq!(finder["reason"], "baseline-hook");
    assert_eq!(finder["owner"]["name"], "flatdemo");
    let path_line = hooks
        .iter()
        .find(|h| h["kind"] == "pth-path" && h["path"].as_str().unwrap().contains("srcdemo"))
        .expect("a path line");
    assert_eq!(path_line["verdict"], "allowed");
    assert!(
        path_line["signals"].as_array().unwrap().is_empty(),
        "{path_line}"
    );
}
