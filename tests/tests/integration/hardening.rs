//! Ways around the guard that must stay closed: well-known lines that load someone else's
//! module, interpreters started without a usable plan, `python -m site`, `.python-version`
//! files that name paths, and untrusted policies that shadow trusted ones.

use sitegate_tests::{assert_ran, pythons, run, OutputText, Python, Sandbox};

fn by_minor(minor: u32) -> Option<Python> {
    pythons()
        .into_iter()
        .find(|p| p.version == (3, minor) && p.label != "debian-3.11")
}

#[test]
fn a_well_known_line_does_not_vouch_for_someone_elses_module() {
    let Some(python) = by_minor(11) else { return };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", true);
    venv.write(
        "__editable__.evil-1.0.pth",
        "import __editable___evil_1_0_finder; __editable___evil_1_0_finder.install()\n",
    );
    venv.write(
        "__editable___evil_1_0_finder.py",
        "print('payload ran')\ndef install(): pass\n",
    );
    let program = ["-c", "print('program')"];
    let guarded = run(sandbox.guarded(None, &venv.python).args(program));
    assert_ran(&guarded, "program\n", "unverified-baseline-hook");

    // setuptools' own line, but its shim module replaced.
    let shim = venv.site_packages.join("_distutils_hack/__init__.py");
    let mut source = std::fs::read_to_string(&shim).unwrap();
    source.push_str("\nprint('payload ran')\n");
    std::fs::write(&shim, source).unwrap();
    let guarded = run(sandbox.guarded(None, &venv.python).args(program));
    assert_ran(&guarded, "program\n", "distutils-precedence.pth:1");
}

#[test]
fn interpreters_without_a_usable_plan_refuse_to_start() {
    let Some(python) = by_minor(11) else { return };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    venv.write("poison.pth", "import sys; print('hook ran')\n");
    // A child whose plan is gone.
    let removed = "import os, subprocess, sys; os.remove(os.environ['SITEGATE_PLAN']); \
                   print('child', subprocess.run([sys.executable, '-c', 'print(1)']).returncode)";
    let output = run(sandbox.guarded(None, &venv.python).args(["-c", removed]));
    assert_ran(
        &output,
        "child 1\n",
        "cannot start without its start-up guard",
    );
    // A child of another build of the same version, if there is one.
    if let Some(debian) = pythons().into_iter().find(|p| p.label == "debian-3.11") {
        let other = format!(
            "import subprocess; print('child', subprocess.run([{:?}, '-c', 'print(1)']).returncode)",
            debian.path.display().to_string()
        );
        let output = run(sandbox.guarded(None, &venv.python).args(["-c", &other]));
        assert_ran(&output, "child 1\n", "another build of Python");
    }
}

#[test]
fn python_dash_m_site_runs_the_guarded_site() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        venv.write("poison.pth", "import sys; print('hook ran')\n");
        let output = run(sandbox.guarded(None, &venv.python).args(["-m", "site"]));
        assert!(
            output.status.success(),
            "{}: {}",
            python.label,
            output.stderr_text()
        );
        assert!(
            !output.stdout_text().contains("hook ran"),
            "{}: {}",
            python.label,
            output.stdout_text()
        );
        assert!(
            output.stdout_text().contains("sys.path = ["),
            "{}",
            output.stdout_text()
        );
    }
}

#[test]
fn a_python_version_file_cannot_name_a_path() {
    // pyenv takes versions by name from its `versions/` directory; a checkout's
    // `.python-version` naming a path would otherwise pick (and run) any binary.
    let root = std::env::var_os("PYENV_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".pyenv")
        });
    let shims = root.join("shims");
    let Some(real) = pythons().into_iter().find(|p| p.path.starts_with(&root)) else {
        return;
    };
    if !shims.join("python3").is_file() {
        eprintln!("skipping: no pyenv shims");
        return;
    }
    let sandbox = Sandbox::new();
    let checkout = sandbox.path().join("checkout");
    let fake = sandbox.path().join("planted");
    std::fs::create_dir_all(fake.join("bin")).unwrap();
    std::fs::create_dir(&checkout).unwrap();
    std::os::unix::fs::symlink(&real.path, fake.join("bin/python3")).unwrap();
    std::fs::write(
        checkout.join(".python-version"),
        format!("{}\n", fake.display()),
    )
    .unwrap();
    let output = run(sandbox
        .sitegate()
        .current_dir(&checkout)
        .args(["scan", "--format", "json", "--python", "python3"])
        .env("PATH", format!("{}:/usr/bin:/bin", shims.display())));
    assert!(
        !output.stdout_text().contains(&fake.display().to_string()),
        "the interpreter a `.python-version` path named was used: {}",
        output.stdout_text()
    );
}

#[test]
fn an_untrusted_policy_below_does_not_shadow_a_trusted_one() {
    let Some(python) = pythons().into_iter().next() else {
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    venv.write("poison.pth", "import sys; print('hook ran')\n");
    let project = sandbox.path().join("project");
    let below = project.join("sub");
    std::fs::create_dir_all(&below).unwrap();
    std::fs::write(project.join("sitegate.toml"), "on-violation = \"fail\"\n").unwrap();
    let trusted = run(sandbox.sitegate().current_dir(&project).arg("trust"));
    assert!(trusted.status.success(), "{}", trusted.stderr_text());
    std::fs::write(below.join("sitegate.toml"), "this is not = = toml\n").unwrap();
    let output = run(sandbox
        .sitegate()
        .current_dir(&below)
        .args(["exec", "--"])
        .arg(&venv.python)
        .args(["-c", "print('program')"]));
    assert_eq!(
        output.status.code(),
        Some(3),
        "the trusted policy above still applies: {}",
        output.stderr_text()
    );
    assert_eq!(output.stdout_text(), "");
    assert!(
        output.stderr_text().contains("untrusted-policy"),
        "{}",
        output.stderr_text()
    );
}

#[test]
fn a_path_file_beside_the_interpreter_is_refused() {
    for python in pythons().into_iter().filter(|p| p.version >= (3, 11)) {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        let shadow = sandbox.path().join("shadow");
        std::fs::create_dir(&shadow).unwrap();
        let path_file = venv.root.join("bin/python._pth");
        std::fs::write(&path_file, format!("{}\n", shadow.display())).unwrap();
        let plain = run(sandbox
            .command(&venv.python)
            .args(["-c", "import sys; print(sys.path[0])"]));
        if plain.stdout_text().trim() != shadow.display().to_string() {
            eprintln!(
                "{}: this build ignores `._pth` files; nothing to refuse",
                python.label
            );
            continue;
        }
        let guarded = run(sandbox
            .guarded(None, &venv.python)
            .args(["-c", "print('ran')"]));
        assert_eq!(
            guarded.status.code(),
            Some(3),
            "{}: {}",
            python.label,
            guarded.stderr_text()
        );
        assert_eq!(guarded.stdout_text(), "");
        assert!(
            guarded.stderr_text().contains("python._pth"),
            "{}",
            guarded.stderr_text()
        );
    }
}
