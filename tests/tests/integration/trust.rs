//! Trust: a `sitegate.toml` found in a project has no effect until `sitegate trust`, and none
//! again once it changes.

use sitegate_tests::{pythons, run, OutputText, Sandbox};

#[test]
fn found_policies_take_effect_only_once_trusted() {
    let Some(python) = pythons().into_iter().next() else {
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    venv.write("poison.pth", "import sys; print('hook ran')\n");
    let project = sandbox.path().join("project");
    let nested = project.join("src/deeper");
    std::fs::create_dir_all(&nested).unwrap();
    let policy = project.join("sitegate.toml");
    std::fs::write(&policy, "[[allow]]\nfile = \"poison.pth\"\n").unwrap();
    let start = || {
        run(sandbox
            .sitegate()
            .current_dir(&nested)
            .args(["exec", "--"])
            .arg(&venv.python)
            .args(["-c", "print('program')"]))
    };

    let untrusted = start();
    assert_eq!(untrusted.stdout_text(), "program\n");
    assert!(
        untrusted.stderr_text().contains("untrusted-policy"),
        "{}",
        untrusted.stderr_text()
    );
    assert!(
        untrusted.stderr_text().contains("sitegate trust"),
        "{}",
        untrusted.stderr_text()
    );

    let trusted = run(sandbox.sitegate().current_dir(&nested).arg("trust"));
    assert!(trusted.status.success(), "{}", trusted.stderr_text());
    let after = start();
    assert_eq!(
        after.stdout_text(),
        "hook ran\nhook ran\nprogram\n",
        "{}",
        after.stderr_text()
    );

    std::fs::write(&policy, "# edited\n[[allow]]\nfile = \"poison.pth\"\n").unwrap();
    let changed = start();
    assert_eq!(changed.stdout_text(), "program\n");
    assert!(
        changed
            .stderr_text()
            .contains("changed since it was trusted"),
        "{}",
        changed.stderr_text()
    );

    // A policy named on the command line is trusted as it is.
    let named = run(sandbox
        .guarded(Some(&policy), &venv.python)
        .args(["-c", "print('program')"]));
    assert!(
        named.stdout_text().contains("hook ran"),
        "{}",
        named.stderr_text()
    );
}
