//! The Kubernetes manifests (`deploy/kubernetes/`) are valid, complete and
//! speak the binaries' real flags.
//!
//! No cluster runs here, so the manifests are checked offline by
//! `kubernetes-validate` (PyPI; it bundles the API schemas), in strict mode
//! (an unknown field is an error), against an older and a current
//! Kubernetes. A deliberately broken manifest must be refused, so the check
//! cannot pass by validating nothing. The kustomization must list every
//! manifest, and every `--flag` the containers are given must be one the
//! binary's `--help` lists (a renamed flag would crash-loop the pods).

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    files
}

/// Run the validator; (success, output).
fn validate(version: &str, files: &[PathBuf]) -> (bool, String) {
    // As a module, so a `pip install --user` outside PATH still works.
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate"])
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .output()
        .expect("kubernetes-validate runs (scripts/test.sh installs it with pip)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_manifests_validate_strictly_and_a_broken_one_does_not() {
    let files = manifests();
    for version in ["1.27.0", "1.37.0"] {
        let (ok, text) = validate(version, &files);
        assert!(ok, "Kubernetes {version}:\n{text}");
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy();
            assert!(
                text.lines()
                    .any(|l| l.contains(&*name) && l.contains("passed")),
                "{name} was not validated against {version}:\n{text}"
            );
        }
    }
    let broken = tempfile::tempdir().unwrap();
    let bad = broken.path().join("nodes.yaml");
    let text = std::fs::read_to_string(dir().join("nodes.yaml")).unwrap();
    std::fs::write(&bad, text.replace("serviceName:", "servicename:")).unwrap();
    let (ok, out) = validate("1.37.0", &[bad]);
    assert!(!ok, "a misspelt field passed validation:\n{out}");
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let k = std::fs::read_to_string(dir().join("kustomization.yaml")).unwrap();
    for f in manifests() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            k.lines().any(|l| l.trim() == format!("- {name}")),
            "{name} is not in kustomization.yaml"
        );
    }
}

/// Every `--flag` in the args of the container running `binary`.
fn flags_for(binary: &str) -> Vec<String> {
    let mut flags = Vec::new();
    for f in manifests() {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut in_args = false;
        let mut runs = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("command:") {
                runs = t.contains(&format!("\"{binary}\""));
            }
            if t == "args:" {
                in_args = runs;
                continue;
            }
            if in_args {
                match t.strip_prefix("- --") {
                    Some(arg) => flags.push(format!("--{}", arg.split('=').next().unwrap())),
                    None => in_args = false,
                }
            }
        }
    }
    flags
}

#[test]
fn every_flag_the_containers_get_exists() {
    let bins = Path::new(env!("CARGO_BIN_EXE_sessionlab"))
        .parent()
        .unwrap();
    for binary in ["sessionlab-node", "sessionlab-lb"] {
        let flags = flags_for(binary);
        assert!(flags.len() >= 3, "{binary}: {flags:?}");
        let help = Command::new(bins.join(binary))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("{binary} --help: {e} (build the binaries first)"));
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in flags {
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{flag} "))),
                "{binary} has no {flag}"
            );
        }
    }
}
