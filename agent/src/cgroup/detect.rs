//! Finding the cgroup hierarchies from `/proc/self/mountinfo`.

use std::path::PathBuf;

use super::Cgroup;

/// The hierarchies replicas' cgroups go in, each already joined with the parent directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// The unified hierarchy, when it has the cpu and memory controllers.
    pub v2: Option<PathBuf>,
    pub v1_memory: Option<PathBuf>,
    pub v1_cpu: Option<PathBuf>,
    pub v1_cpuacct: Option<PathBuf>,
    /// v2: the mount point, for enabling controllers down to the parent.
    v2_mount: Option<PathBuf>,
}

/// Picks v2 when the unified hierarchy offers both `cpu` and `memory`, else v1 when a v1
/// `memory` hierarchy is mounted; names what is missing otherwise.
pub fn parse_mountinfo(text: &str, parent: &str) -> Result<Hierarchies, String> {
    let parent = parent.trim_matches('/');
    let mut h = Hierarchies::default();
    let mut v2_mount: Option<PathBuf> = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let Some(mount) = fields.get(4) else { continue };
        let mount = PathBuf::from(unescape(mount));
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let options = right.nth(1).unwrap_or_default();
        match fstype {
            "cgroup2" => v2_mount = Some(mount),
            "cgroup" => {
                let controllers: Vec<&str> = options.split(',').collect();
                let dir = mount.join(parent);
                if controllers.contains(&"memory") {
                    h.v1_memory = Some(dir.clone());
                }
                if controllers.contains(&"cpu") {
                    h.v1_cpu = Some(dir.clone());
                }
                if controllers.contains(&"cpuacct") {
                    h.v1_cpuacct = Some(dir);
                }
            }
            _ => {}
        }
    }
    if let Some(mount) = v2_mount {
        let controllers =
            std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("cpu") && has("memory") {
            return Ok(Hierarchies {
                v2: Some(mount.join(parent)),
                v2_mount: Some(mount),
                ..Hierarchies::default()
            });
        }
    }
    if h.v1_memory.is_some() {
        return Ok(h);
    }
    Err("no cgroup hierarchy with the memory controller is mounted".into())
}

/// mountinfo escapes spaces and a few other bytes as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Hierarchies {
    pub fn describe(&self) -> String {
        match &self.v2 {
            Some(p) => format!("v2 at {}", p.display()),
            None => format!(
                "v1 memory at {}, cpu at {}",
                self.v1_memory
                    .as_ref()
                    .map_or("-".into(), |p| p.display().to_string()),
                self.v1_cpu
                    .as_ref()
                    .map_or("-".into(), |p| p.display().to_string())
            ),
        }
    }

    /// Creates the parent directories; on v2 also enables the cpu and memory controllers for
    /// the children of every level from the mount point down to the parent.
    pub fn create_parent(&self) -> Result<(), String> {
        if let (Some(dir), Some(mount)) = (&self.v2, &self.v2_mount) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let mut level = mount.clone();
            let rel = dir
                .strip_prefix(mount)
                .unwrap_or(dir.as_path())
                .to_path_buf();
            let mut levels = vec![level.clone()];
            for part in rel.components() {
                level = level.join(part);
                levels.push(level.clone());
            }
            for l in &levels {
                // Fails harmlessly where already enabled; checked below.
                let _ = std::fs::write(l.join("cgroup.subtree_control"), "+cpu +memory");
            }
            let enabled =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if !(enabled.contains("memory") && enabled.contains("cpu")) {
                return Err(format!(
                    "cannot enable the cpu and memory controllers in {} (a cgroup with \
                     processes of its own cannot delegate them)",
                    dir.display()
                ));
            }
            return Ok(());
        }
        for dir in [&self.v1_memory, &self.v1_cpu, &self.v1_cpuacct]
            .into_iter()
            .flatten()
        {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        Ok(())
    }

    pub fn cgroup_for(&self, id: &str) -> Cgroup {
        match &self.v2 {
            Some(dir) => {
                let d = dir.join(id);
                Cgroup {
                    v2: true,
                    memory: Some(d.clone()),
                    cpu: Some(d),
                    cpuacct: None,
                }
            }
            None => {
                let cpu = self.v1_cpu.as_ref().map(|p| p.join(id));
                let cpuacct = self
                    .v1_cpuacct
                    .as_ref()
                    .filter(|p| Some(*p) != self.v1_cpu.as_ref())
                    .map(|p| p.join(id));
                Cgroup {
                    v2: false,
                    memory: self.v1_memory.as_ref().map(|p| p.join(id)),
                    cpu,
                    cpuacct,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /nonexistent/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_where_the_unified_hierarchy_lacks_controllers() {
        let h = parse_mountinfo(HYBRID, "universal").unwrap();
        assert_eq!(h.v2, None);
        assert_eq!(
            h.v1_memory.as_deref(),
            Some(std::path::Path::new("/sys/fs/cgroup/memory/universal"))
        );
        let cg = h.cgroup_for("a1");
        assert_eq!(cg.dirs().len(), 3);
        assert!(cg.cpuacct.is_some());
    }

    #[test]
    fn v2_when_it_has_cpu_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        let text = format!(
            "30 1 0:26 / {} rw - cgroup2 cgroup2 rw,nsdelegate\n",
            dir.path().display()
        );
        let h = parse_mountinfo(&text, "/universal/").unwrap();
        assert_eq!(h.v2, Some(dir.path().join("universal")));
        let cg = h.cgroup_for("a1");
        assert!(cg.v2);
        assert_eq!(cg.dirs(), vec![dir.path().join("universal/a1")]);
    }

    #[test]
    fn none_without_a_memory_hierarchy() {
        let err = parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n", "u").unwrap_err();
        assert!(err.contains("memory controller"), "{err}");
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
