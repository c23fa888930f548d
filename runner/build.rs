//! Builds the preloaded library (`preload/sitegate_preload.c`) as a shared object that the
//! binary embeds; see that file for why it is C.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "preload/sitegate_preload.c";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let library = out.join("libsitegate_preload.so");
    let compiler = cc::Build::new().get_compiler();
    let status = compiler
        .to_command()
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&library)
        .arg(source)
        .arg("-ldl")
        .status()
        .expect("the C compiler runs");
    assert!(status.success(), "building {source} failed");
    let _ = Command::new("strip")
        .arg("--strip-unneeded")
        .arg(&library)
        .status();
}
