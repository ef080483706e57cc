//! Can this process set up io_uring, and which I/O driver will ringcast's workers get?
//!
//! ringcast builds each worker's runtime with monoio's `FusionDriver`: monoio first asks
//! `monoio::utils::detect_uring()` (a 2-entry ring and an opcode probe; false also when
//! `MONOIO_FORCE_LEGACY_DRIVER` is set) and falls back to epoll when that fails; when it
//! succeeds, the worker sets up a ring of 4,096 entries, and if *that* fails the worker —
//! and so the server — does not start. This module finds out which of the three it is, by
//! setting up (and at once closing) a ring of the same size: nothing on the host changes.

use std::io;

use serde::Serialize;

use super::model;

/// What the kernel and this process allow, and the outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Uring {
    /// `kernel.io_uring_disabled`: 0 allowed, 1 only for `CAP_SYS_ADMIN` or members of
    /// `kernel.io_uring_group`, 2 disabled. `None`: the setting does not exist (before 6.6).
    pub disabled: Option<u64>,
    /// `kernel.io_uring_group` (-1: none).
    pub group: Option<i64>,
    /// Seccomp mode of this process: 0 none, 1 strict, 2 filter (containers).
    pub seccomp: Option<u64>,
    /// `io_uring_setup` with the workers' 4,096 entries: `None` if it worked, else the error.
    pub setup_error: Option<SetupError>,
    /// `monoio::utils::detect_uring()`: a small ring and every opcode monoio uses.
    pub monoio_detects: bool,
    /// `MONOIO_FORCE_LEGACY_DRIVER` is set (to 1/true/yes): monoio uses epoll regardless.
    pub forced_legacy: bool,
}

/// A failed `io_uring_setup`.
#[derive(Debug, Clone, Serialize)]
pub struct SetupError {
    pub errno: Option<i32>,
    pub message: String,
}

/// The driver ringcast's workers will run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// io_uring, as designed and measured.
    IoUring,
    /// monoio's epoll fallback: works, but the tuning figures are io_uring's.
    Epoll,
    /// monoio detects io_uring but the workers' 4,096-entry ring cannot be set up: the
    /// server fails to start ("cannot start the runtime").
    Broken,
}

impl Uring {
    pub fn driver(&self) -> Driver {
        match (self.monoio_detects, &self.setup_error) {
            (false, _) => Driver::Epoll,
            (true, None) => Driver::IoUring,
            (true, Some(_)) => Driver::Broken,
        }
    }

    /// Why `io_uring_setup` failed, in the host's terms.
    pub fn explain(&self) -> Option<String> {
        if self.forced_legacy {
            return Some("MONOIO_FORCE_LEGACY_DRIVER is set in the environment".into());
        }
        let e = self.setup_error.as_ref()?;
        let why = match e.errno {
            Some(libc::EPERM) if self.disabled == Some(2) => {
                "kernel.io_uring_disabled = 2 disables io_uring for every process"
            }
            Some(libc::EPERM) if self.disabled == Some(1) => {
                "kernel.io_uring_disabled = 1 allows io_uring only to CAP_SYS_ADMIN and to \
                 members of kernel.io_uring_group"
            }
            Some(libc::EPERM) if self.seccomp == Some(2) => {
                "a seccomp filter (container runtime profile) refuses io_uring_setup"
            }
            Some(libc::EPERM) => "not permitted (io_uring_disabled, a seccomp filter or an LSM)",
            Some(libc::ENOSYS) if self.seccomp == Some(2) => {
                "io_uring_setup is not available: a seccomp filter returns ENOSYS for it \
                 (container runtime profile), or the kernel lacks CONFIG_IO_URING"
            }
            Some(libc::ENOSYS) => "the kernel is built without io_uring (CONFIG_IO_URING=n)",
            Some(libc::ENOMEM) => {
                "not enough locked memory: before Linux 5.12 rings count against \
                 RLIMIT_MEMLOCK (or the memory cgroup is full)"
            }
            Some(libc::EINVAL) => "the kernel refuses the ring parameters (kernel too old?)",
            Some(libc::EMFILE | libc::ENFILE) => "no file descriptor left for the ring",
            _ => "io_uring_setup failed",
        };
        Some(format!("{why} ({})", e.message))
    }
}

/// Probe this process: settings, a 4,096-entry ring, and monoio's own detection.
pub fn probe() -> Uring {
    let setup_error = match io_uring::IoUring::new(model::URING_ENTRIES) {
        Ok(ring) => {
            drop(ring);
            None
        }
        Err(e) => Some(setup_error(&e)),
    };
    let forced_legacy = std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    Uring {
        disabled: read_num("/proc/sys/kernel/io_uring_disabled"),
        group: read_num("/proc/sys/kernel/io_uring_group"),
        seccomp: super::limits::proc_status("Seccomp").and_then(|s| s.parse().ok()),
        setup_error,
        monoio_detects: monoio::utils::detect_uring(),
        forced_legacy,
    }
}

fn setup_error(e: &io::Error) -> SetupError {
    SetupError {
        errno: e.raw_os_error(),
        message: e.to_string(),
    }
}

fn read_num<T: std::str::FromStr>(path: &str) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(detects: bool, errno: Option<i32>) -> Uring {
        Uring {
            disabled: Some(0),
            group: Some(-1),
            seccomp: Some(0),
            setup_error: errno.map(|n| setup_error(&io::Error::from_raw_os_error(n))),
            monoio_detects: detects,
            forced_legacy: false,
        }
    }

    #[test]
    fn driver_follows_monoio_then_the_full_ring() {
        assert_eq!(with(true, None).driver(), Driver::IoUring);
        assert_eq!(with(false, Some(libc::EPERM)).driver(), Driver::Epoll);
        assert_eq!(with(true, Some(libc::ENOMEM)).driver(), Driver::Broken);
        let mut u = with(false, Some(libc::EPERM));
        u.disabled = Some(2);
        assert!(
            u.explain()
                .is_some_and(|e| e.contains("io_uring_disabled = 2"))
        );
        u.disabled = Some(0);
        u.seccomp = Some(2);
        assert!(u.explain().is_some_and(|e| e.contains("seccomp")));
        assert!(with(true, None).explain().is_none());
    }

    #[test]
    fn probing_this_host_does_not_fail() {
        let u = probe();
        // Whatever the host allows, the answer is consistent with monoio's.
        if u.driver() == Driver::IoUring {
            assert!(u.setup_error.is_none());
        }
    }
}
