//! A dyno for one trial: a child memory cgroup of tune's own, limited to the dyno's quota,
//! into which the server is moved before it starts (as a platform puts a dyno in its own cgroup).
//!
//! v1: `/sys/fs/cgroup/memory/<ours>/<name>` with `memory.limit_in_bytes`; v2:
//! `/sys/fs/cgroup[/unified]/<ours>/<name>` with `memory.max` (kernel docs
//! `admin-guide/cgroup-v1/memory.rst`, `admin-guide/cgroup-v2.rst`). Needs write access
//! to the cgroup (root, or a delegated subtree); where it is refused the caller carries on
//! without one. Reading our own cgroup goes through `runicorn::internals::cgroup`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runicorn::internals::cgroup::CgroupVersion;

pub use runicorn::internals::cgroup::{own, own_quota_bytes};

/// A child memory cgroup made for one trial; removed by [`DynoCgroup::remove`].
#[derive(Debug)]
pub struct DynoCgroup {
    /// Its directory.
    pub dir: PathBuf,
    version: CgroupVersion,
}

impl DynoCgroup {
    /// Makes `name` under this process's memory cgroup with a limit of `limit_bytes`.
    /// The error says why in one line (no cgroup, not writable, no memory controller).
    pub fn create(name: &str, limit_bytes: u64) -> Result<DynoCgroup, String> {
        let (version, parent) = own().ok_or("no memory cgroup found in /proc/self/cgroup")?;
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cg = DynoCgroup { dir, version };
        let limit_file = match version {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        if let Err(e) = fs::write(cg.dir.join(limit_file), limit_bytes.to_string()) {
            let _ = fs::remove_dir(&cg.dir);
            return Err(format!(
                "cannot set {} in {}: {e} (no memory controller for child cgroups here?)",
                limit_file,
                cg.dir.display()
            ));
        }
        Ok(cg)
    }

    /// The file a process writes its pid to, to move into the cgroup.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The most memory the cgroup has held (v1 `memory.max_usage_in_bytes`, v2
    /// `memory.peak`, Linux 5.19+).
    pub fn peak_bytes(&self) -> Option<u64> {
        let name = match self.version {
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
            CgroupVersion::V2 => "memory.peak",
        };
        fs::read_to_string(self.dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The memory charged to the cgroup now (v1 `memory.usage_in_bytes`, v2
    /// `memory.current`).
    pub fn current_bytes(&self) -> Option<u64> {
        let name = match self.version {
            CgroupVersion::V1 => "memory.usage_in_bytes",
            CgroupVersion::V2 => "memory.current",
        };
        fs::read_to_string(self.dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Processes the kernel killed for lack of memory in this cgroup (`oom_kill` in v1
    /// `memory.oom_control`, Linux 4.13+, or v2 `memory.events`).
    pub fn oom_kills(&self) -> Option<u64> {
        let name = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        flat_key(&fs::read_to_string(self.dir.join(name)).ok()?, "oom_kill")
    }

    /// Removes the cgroup once its processes are gone (they may take a moment to leave
    /// after being reaped); gives up after `wait` and says so.
    pub fn remove(&self, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("cannot remove {}: {e}", self.dir.display()));
                }
                // EBUSY while exiting processes are still charged to it.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// The value of `key` in a flat-keyed file (`key value` per line).
pub fn flat_key(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(flat_key(v1, "oom_kill"), Some(3));
        assert_eq!(flat_key(v1, "oom_kill_disable"), Some(0));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(flat_key(v2, "oom_kill"), Some(1));
        assert_eq!(flat_key("oom_kill x\n", "oom_kill"), None);
        assert_eq!(flat_key("", "oom_kill"), None);
    }
}
