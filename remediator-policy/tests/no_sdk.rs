//! The policy language builds without the AWS SDK: no dependency of this crate, of any
//! kind (normal, dev, build, per target), is an `aws-*` crate, by name or by `package =`.

const MANIFEST: &str = include_str!("../Cargo.toml");

/// The names of every dependency the manifest declares, with the section declaring it.
fn dependencies(manifest: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            // `[dependencies.aws-x]`, `[target.'cfg(..)'.dev-dependencies.aws-x]`
            if let Some((table, name)) = section.rsplit_once('.') {
                if table.ends_with("dependencies") {
                    deps.push((section.clone(), name.trim_matches('"').to_string()));
                }
            }
            continue;
        }
        if !section.ends_with("dependencies") {
            // Inside `[dependencies.x]`: `package = "aws-..."` renames x to an SDK crate.
            if section.rsplit_once('.').is_some_and(|(t, _)| t.ends_with("dependencies")) {
                if let Some(("package", value)) = line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    deps.push((section.clone(), value.trim_matches('"').to_string()));
                }
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let name = key.trim().split('.').next().unwrap_or("").trim_matches('"').to_string();
        deps.push((section.clone(), name));
        // `x = { package = "aws-..." }`
        if let Some(rest) = value.split("package").nth(1) {
            if let Some(package) = rest.trim_start().strip_prefix('=').and_then(|v| v.trim_start().split('"').nth(1)) {
                deps.push((section.clone(), package.to_string()));
            }
        }
    }
    deps
}

#[test]
fn no_dependency_is_an_aws_crate() {
    let deps = dependencies(MANIFEST);
    assert!(deps.iter().any(|(_, n)| n == "serde_json"), "the manifest was read: {deps:?}");
    let sdk: Vec<_> = deps.iter().filter(|(_, n)| n.starts_with("aws-") || n.starts_with("aws_")).collect();
    assert!(sdk.is_empty(), "remediator-policy must build without the AWS SDK, but declares {sdk:?}");
}

#[test]
fn the_check_sees_every_way_to_declare_an_sdk_dependency() {
    for manifest in [
        "[dependencies]\naws-config = \"1\"\n",
        "[dependencies]\naws-sdk-s3.workspace = true\n",
        "[dev-dependencies]\naws-smithy-mocks = \"0.3\"\n",
        "[build-dependencies]\ns3 = { version = \"1\", package = \"aws-sdk-s3\" }\n",
        "[target.'cfg(unix)'.dependencies]\naws-sdk-sns = \"1\"\n",
        "[dependencies.aws-sdk-sfn]\nversion = \"1\"\n",
        "[dependencies.sfn]\npackage = \"aws-sdk-sfn\"\nversion = \"1\"\n",
    ] {
        let deps = dependencies(manifest);
        assert!(deps.iter().any(|(_, n)| n.starts_with("aws-")), "missed in {manifest:?}: {deps:?}");
    }
    let deps = dependencies("[package]\nname = \"aws-lookalike\"\n[features]\naws-x = []\n");
    assert!(deps.is_empty(), "{deps:?}");
}
