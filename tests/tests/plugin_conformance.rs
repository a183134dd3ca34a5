//! The conformance suite against the qcow2 plugin through the loader, by
//! the documented command (`kiln-conformance`), and that command's
//! refusal of libraries that are not usable plugins.

mod plugin_support;

use std::process::Command;

use plugin_support::{libraries, require_root, system_library, temp_dir};

fn kiln_conformance(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln-conformance"))
        .args(args)
        .output()
        .expect("run kiln-conformance");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn root_qcow2_plugin_passes_the_conformance_suite() {
    require_root("the qcow2 plugin's raw views are FUSE mounts");
    let libs = libraries();
    let dir = temp_dir("kiln-conf-qcow2");
    let options = serde_json::json!({ "path": dir.path().join("pool") }).to_string();
    let library = libs.qcow2.to_str().expect("a UTF-8 target path");
    let (code, stdout, stderr) = kiln_conformance(&["--library", library, "--options", &options]);
    println!("{stdout}");
    assert_eq!(code, 0, "conformance failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("plugin qcow2 0.1.0"), "{stdout}");
    assert!(
        stdout.contains("conformance plugin-qcow2 create: passed"),
        "{stdout}"
    );
    assert!(stdout.contains("sparse_reads: passed"), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

#[test]
fn conformance_refuses_a_library_of_another_abi_version() {
    let libs = libraries();
    let library = libs.wrong_abi.to_str().expect("a UTF-8 target path");
    let (code, _, stderr) = kiln_conformance(&["--library", library]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(library), "names the library: {stderr}");
    assert!(
        stderr.contains("version 99") && stderr.contains("speaks version 1"),
        "names both versions: {stderr}"
    );
}

#[test]
fn conformance_refuses_a_library_that_is_not_a_plugin() {
    let libm = system_library();
    let library = libm.to_str().expect("a UTF-8 path");
    let (code, _, stderr) = kiln_conformance(&["--library", library]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{library} is not a kiln plugin"))
            && stderr.contains("kiln_plugin_entry"),
        "{stderr}"
    );
}
