//! Host name, OS and kernel.

use std::path::Path;

pub(super) struct Host {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
}

pub(super) fn discover(root: &Path) -> Host {
    let trimmed = |p: &str| {
        super::read(root, p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let os = super::read(root, "/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    Host {
        hostname: trimmed("/proc/sys/kernel/hostname"),
        os,
        kernel: trimmed("/proc/sys/kernel/osrelease"),
    }
}
