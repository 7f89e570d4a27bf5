//! Reads manifests from files, directories (their `.yaml`, `.yml` and `.json` files, sorted)
//! or standard input (`-`).

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// (source name, text) for each input.
pub fn read_sources(inputs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for input in inputs {
        if input == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            out.push(("<stdin>".to_string(), text));
            continue;
        }
        let path = Path::new(input);
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {input}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                out.push((f.display().to_string(), text));
            }
        } else {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {input}"))?;
            out.push((input.clone(), text));
        }
    }
    Ok(out)
}
