//! Bad input: broken policies, unreadable, undecodable, oversized and odd `.pth` files, and
//! ten thousand of them. Each gives a clear message and CPython's own behaviour, never a panic
//! and never a silent allow.

use sitegate_tests::{pythons, run, unsupported_python, OutputText, Sandbox};

fn program() -> [&'static str; 2] {
    ["-c", "print('program')"]
}

#[test]
fn a_broken_policy_stops_the_launch_with_file_and_line() {
    let Some(python) = pythons().into_iter().next() else {
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    let policy = sandbox.path().join("broken.toml");
    std::fs::write(&policy, "[[allow]]\nfile = \"x.pth\"\nenvv = [\"A\"]\n").unwrap();
    let output = run(sandbox.guarded(Some(&policy), &venv.python).args(program()));
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.stdout_text(), "", "nothing of the program ran");
    let location = format!("{}:3:", policy.display());
    assert!(
        output.stderr_text().contains(&location),
        "{}",
        output.stderr_text()
    );
    assert!(
        output.stderr_text().starts_with("error: "),
        "{}",
        output.stderr_text()
    );
}

#[test]
fn odd_pth_files_behave_as_cpython_does() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        std::fs::create_dir(venv.site_packages.join("folder.pth")).unwrap();
        std::os::unix::fs::symlink(
            "/nonexistent/target.pth",
            venv.site_packages.join("dangling.pth"),
        )
        .unwrap();
        let big = std::fs::File::create(venv.site_packages.join("huge.pth")).unwrap();
        big.set_len(100 << 20).unwrap();
        venv.write("zz_after.pth", "import sys; print('allowed hook')\n");
        let policy = sandbox.path().join("p.toml");
        std::fs::write(&policy, "[[allow]]\nfile = \"zz_after.pth\"\n").unwrap();

        let plain = run(sandbox.command(&venv.python).args(program()));
        assert!(
            plain.status.success(),
            "{}: {}",
            python.label,
            plain.stderr_text()
        );
        let guarded = run(sandbox.guarded(Some(&policy), &venv.python).args(program()));
        assert_eq!(
            guarded.status.code(),
            Some(0),
            "{}: {}",
            python.label,
            guarded.stderr_text()
        );
        assert_eq!(
            guarded.stdout_text(),
            "allowed hook\nallowed hook\nprogram\n",
            "{}",
            python.label
        );
        let stderr = guarded.stderr_text();
        assert!(
            stderr.contains("oversized-hook-file") && stderr.contains("huge.pth"),
            "{stderr}"
        );
        assert!(
            stderr.contains("folder.pth") && stderr.contains("dangling.pth"),
            "{stderr}"
        );

        let strict = run(sandbox
            .sitegate()
            .arg("--policy")
            .arg(&policy)
            .args(["exec", "--strict", "--"])
            .arg(&venv.python)
            .args(program()));
        assert_eq!(strict.status.code(), Some(3), "{}", strict.stderr_text());
        assert_eq!(strict.stdout_text(), "");
    }
}

#[test]
fn an_undecodable_pth_refuses_the_start_as_cpython_aborts() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        let bad = venv.write("bad.pth", b"import os\n\xff\xfe\n");
        let plain = run(sandbox
            .command(&venv.python)
            .args(program())
            .env("LC_ALL", "C.UTF-8"));
        assert_eq!(
            plain.status.code(),
            Some(1),
            "{}: CPython aborts: {}",
            python.label,
            plain.stderr_text()
        );
        let guarded = run(sandbox
            .guarded(None, &venv.python)
            .args(program())
            .env("LC_ALL", "C.UTF-8"));
        assert_eq!(guarded.status.code(), Some(3), "{}", python.label);
        assert!(
            guarded.stderr_text().contains(&bad.display().to_string()),
            "{}",
            guarded.stderr_text()
        );
        let scan = run(sandbox
            .sitegate()
            .args(["scan", "--python"])
            .arg(&venv.python)
            .env("LC_ALL", "C.UTF-8"));
        assert_eq!(scan.status.code(), Some(1), "{}", scan.stderr_text());
    }
}

#[test]
fn ten_thousand_pth_files() {
    let Some(python) = pythons().into_iter().last() else {
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    for index in 0..10_000 {
        venv.write(
            &format!("many_{index:05}.pth"),
            format!("missing_{index}\n"),
        );
    }
    venv.write("zz_code.pth", "import sys\n");
    let scan = run(sandbox
        .sitegate()
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python));
    assert_eq!(scan.status.code(), Some(1));
    let document: serde_json::Value = serde_json::from_str(&scan.stdout_text()).unwrap();
    let hooks = document["hooks"].as_array().unwrap();
    assert!(hooks.len() > 10_000, "{}", hooks.len());
    let guarded = run(sandbox.guarded(None, &venv.python).args(program()));
    assert_eq!(
        guarded.stdout_text(),
        "program\n",
        "{}",
        guarded.stderr_text()
    );
    assert_eq!(
        guarded.stderr_text().matches("warning[").count(),
        1,
        "one warning for the one code line"
    );
}

#[test]
fn programs_that_are_not_a_supported_python_are_refused() {
    let sandbox = Sandbox::new();
    let not_python = run(sandbox
        .sitegate()
        .args(["exec", "--", "/bin/sh", "-c", "echo ran"]));
    assert_eq!(not_python.status.code(), Some(3));
    assert_eq!(not_python.stdout_text(), "");
    assert!(
        not_python.stderr_text().contains("not a CPython"),
        "{}",
        not_python.stderr_text()
    );
    let missing = run(sandbox.sitegate().args(["exec", "--", "/no/such/python"]));
    assert_eq!(missing.status.code(), Some(3));
    match unsupported_python() {
        Some(old) => {
            let refused = run(sandbox.guarded(None, &old).args(["-c", "print('ran')"]));
            assert_eq!(refused.status.code(), Some(3), "{}", refused.stderr_text());
            assert!(
                refused.stderr_text().contains("supports CPython 3.8"),
                "{}",
                refused.stderr_text()
            );
        }
        None => {
            eprintln!("skipping the old-interpreter refusal: no Python 2.7, 3.6 or 3.7 present")
        }
    }
}
