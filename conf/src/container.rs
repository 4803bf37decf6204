//! Whether the process runs inside a container, which changes two defaults: no daemon
//! mode (the server must stay in the foreground, often as PID 1) and auto reload on (a
//! mounted ConfigMap changes under the process, and nobody is there to send SIGHUP).

use std::path::Path;
use std::sync::OnceLock;

/// What detection looks at. Injectable so the decision can be tested without depending
/// on the machine the tests happen to run on.
pub struct ContainerProbes<'a> {
    /// Whether a file exists.
    pub exists: &'a dyn Fn(&Path) -> bool,
    /// A file's text, when it can be read.
    pub read: &'a dyn Fn(&Path) -> Option<String>,
    /// An environment variable, when set.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Files that container runtimes create in every container: Docker's `/.dockerenv`, and
/// Podman's `/run/.containerenv`.
const MARKER_FILES: &[&str] = &["/.dockerenv", "/run/.containerenv"];

/// Words that appear in PID 1's cgroup path under Docker, Kubernetes, containerd and
/// Podman (cgroup v1, and v2 hosts that keep the runtime's path visible).
const CGROUP_MARKERS: &[&str] = &["docker", "kubepods", "containerd", "libpod"];

/// Environment variables set inside containers: Kubernetes injects
/// `KUBERNETES_SERVICE_HOST` into every pod; Podman, systemd-nspawn and LXC set
/// `container` for the container's processes.
const ENV_MARKERS: &[&str] = &["KUBERNETES_SERVICE_HOST", "container"];

/// Whether this process runs inside a container, as SRS decides it (plus Podman and
/// Kubernetes markers). Probed once: the answer cannot change while the process runs.
pub fn in_container() -> bool {
    static CACHED: OnceLock<bool> = OnceLock::new();
    *CACHED.get_or_init(|| {
        detect_container(&ContainerProbes {
            exists: &|path| path.exists(),
            read: &|path| std::fs::read_to_string(path).ok(),
            env: &crate::process_env,
        })
    })
}

/// [`in_container`] over the given probes.
pub fn detect_container(probes: &ContainerProbes<'_>) -> bool {
    MARKER_FILES
        .iter()
        .any(|file| (probes.exists)(Path::new(file)))
        || (probes.read)(Path::new("/proc/1/cgroup"))
            .is_some_and(|cgroup| CGROUP_MARKERS.iter().any(|m| cgroup.contains(m)))
        || ENV_MARKERS
            .iter()
            .any(|name| (probes.env)(name).is_some_and(|v| !v.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes of a machine with exactly these files, this `/proc/1/cgroup` and this
    /// environment.
    fn detect(files: &[&str], cgroup: Option<&str>, env: &[(&str, &str)]) -> bool {
        detect_container(&ContainerProbes {
            exists: &|path| files.iter().any(|f| Path::new(f) == path),
            read: &|path| {
                (path == Path::new("/proc/1/cgroup"))
                    .then(|| cgroup.map(str::to_owned))
                    .flatten()
            },
            env: &|name| {
                env.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            },
        })
    }

    #[test]
    fn bare_host_is_not_a_container() {
        assert!(!detect(&[], None, &[]));
        assert!(!detect(&["/etc/passwd"], Some("0::/init.scope\n"), &[]));
        assert!(!detect(
            &[],
            Some("12:pids:/user.slice/user-1000.slice/session-2.scope\n"),
            &[("HOME", "/root")]
        ));
    }

    #[test]
    fn marker_files() {
        assert!(detect(&["/.dockerenv"], None, &[]));
        assert!(detect(&["/run/.containerenv"], None, &[]));
    }

    #[test]
    fn cgroup_of_pid_1() {
        for cgroup in [
            "12:pids:/docker/0123456789abcdef\n",
            "11:memory:/kubepods/burstable/pod1234/abcd\n",
            "0::/system.slice/containerd.service/x\n",
            "0::/machine.slice/libpod-0123.scope\n",
        ] {
            assert!(detect(&[], Some(cgroup), &[]), "{cgroup}");
        }
    }

    #[test]
    fn environment_markers() {
        assert!(detect(
            &[],
            None,
            &[("KUBERNETES_SERVICE_HOST", "10.96.0.1")]
        ));
        assert!(detect(&[], None, &[("container", "podman")]));
        assert!(!detect(&[], None, &[("KUBERNETES_SERVICE_HOST", "")]));
        assert!(!detect(&[], None, &[("container", " ")]));
    }

    #[test]
    fn real_probe_is_stable() {
        assert_eq!(in_container(), in_container());
    }
}
