//! Container attribution: which container is behind a container veth. The
//! veth's `IFLA_LINK_NETNSID` is the peer's namespace as this namespace
//! numbers it; [`Attributor`] finds the namespace files and processes in
//! that namespace and reads the container id from a process's cgroup.
//!
//! # Matching namespaces
//!
//! A namespace id (nsid) is local to the namespace that observes it: only
//! the kernel maps it to a namespace. So for each candidate namespace (each
//! file bind-mounted under `/var/run/netns` and `/var/run/docker/netns`,
//! each distinct `/proc/PID/ns/net`), the attributor opens the file and asks
//! with RTM_GETNSID and `NETNSA_FD` which nsid this namespace gave it.
//! RTM_GETNSID only looks up: it assigns no id to a namespace that has none
//! (answers -1), so attribution leaves no trace. Inode numbers (`stat` of
//! the nsfs file) identify a namespace globally and are used to group the
//! thousands of processes of a host into their few namespaces, so the
//! kernel is asked once per namespace, not once per process. Comparing
//! inodes alone cannot work: nothing maps an nsid to an inode without
//! asking the kernel.
//!
//! # Container ids
//!
//! `/proc/PID/cgroup` of a process in the namespace names the container in
//! the layouts of Docker (`docker-<id>.scope` with the systemd driver,
//! `/docker/<id>` with cgroupfs), containerd's CRI plugin
//! (`cri-containerd-<id>.scope`), CRI-O (`crio-<id>.scope`), Podman
//! (`libpod-<id>.scope`) and Kubernetes with the cgroupfs driver
//! (`/kubepods/<qos>/pod<uid>/<id>`). A process in a private cgroup namespace
//! sees `0::/` and yields nothing. When the Docker daemon's socket exists,
//! its API adds the container's name and image; that is optional and fails
//! soft.
//!
//! The attributor's socket must live in the namespace whose veths are
//! attributed (create it on the thread that opened the
//! [`crate::LinkWatcher`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::docker::DockerClient;
use crate::link::Link;
use crate::socket::{Received, RouteSocket};

/// Directories holding bind-mounted namespace files, searched in this order
/// (the first name found for a namespace is kept): iproute2's, then Docker's.
pub const NETNS_DIRS: [&str; 2] = ["/var/run/netns", "/var/run/docker/netns"];

/// How long the kernel may take to answer one RTM_GETNSID.
const NSID_TIMEOUT: Duration = Duration::from_secs(1);

/// The container runtime a cgroup path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Docker (moby).
    Docker,
    /// containerd's CRI plugin (Kubernetes).
    Containerd,
    /// CRI-O.
    CriO,
    /// Podman.
    Podman,
    /// A container id without a runtime marker (Kubernetes with the
    /// cgroupfs driver).
    Unknown,
}

/// A container id read from a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerId {
    /// The runtime the layout belongs to.
    pub runtime: Runtime,
    /// The id, lower-case hex.
    pub id: String,
}

/// The container id in the contents of a `/proc/PID/cgroup` file, if any of
/// its lines names one.
pub fn container_id_from_cgroup(contents: &str) -> Option<ContainerId> {
    contents.lines().find_map(|line| {
        // hierarchy-ID:controller-list:cgroup-path; the path may hold ':'.
        let path = line.splitn(3, ':').nth(2)?;
        container_id_from_path(path)
    })
}

/// The container id in one cgroup path, looked for from the deepest
/// component up.
pub fn container_id_from_path(path: &str) -> Option<ContainerId> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (depth, component) in components.iter().enumerate().rev() {
        if let Some(unit) = component.strip_suffix(".scope") {
            // conmon, CRI-O's monitor, runs in the host's namespaces.
            if unit.starts_with("crio-conmon-") {
                continue;
            }
            let prefixes = [
                ("docker-", Runtime::Docker),
                ("cri-containerd-", Runtime::Containerd),
                ("crio-", Runtime::CriO),
                ("libpod-", Runtime::Podman),
            ];
            for (prefix, runtime) in prefixes {
                if let Some(id) = unit.strip_prefix(prefix).filter(|id| is_id(id, 12)) {
                    return Some(ContainerId {
                        runtime,
                        id: id.to_owned(),
                    });
                }
            }
        } else if component.len() == 64 && is_id(component, 64) {
            let parents = &components[..depth];
            let runtime = if parents.contains(&"docker") {
                Runtime::Docker
            } else {
                Runtime::Unknown
            };
            // A bare 64-hex directory counts under docker/ or kubepods only:
            // elsewhere it could be anything.
            if runtime == Runtime::Docker || parents.iter().any(|p| p.starts_with("kubepods")) {
                return Some(ContainerId {
                    runtime,
                    id: (*component).to_owned(),
                });
            }
        }
    }
    None
}

fn is_id(text: &str, min_len: usize) -> bool {
    text.len() >= min_len && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Who is behind a namespace id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The namespace id (as the attributing namespace numbers it).
    pub nsid: i32,
    /// The container id, when a process in the namespace has one in its
    /// cgroup.
    pub id: Option<String>,
    /// The runtime the cgroup layout names.
    pub runtime: Option<Runtime>,
    /// The name of the bind-mounted namespace file (`rsbed-c1` for
    /// `/var/run/netns/rsbed-c1`, Docker's sandbox id under
    /// `/var/run/docker/netns`).
    pub netns: Option<String>,
    /// That file's path.
    pub netns_path: Option<PathBuf>,
    /// A process in the namespace: the lowest pid whose cgroup names a
    /// container, else the lowest pid.
    pub pid: Option<u32>,
    /// The container's name, from the Docker API.
    pub name: Option<String>,
    /// The container's image, from the Docker API.
    pub image: Option<String>,
}

/// A namespace as the filesystem shows it, before the kernel names its nsid.
#[derive(Default)]
struct Candidate {
    named: Option<(String, PathBuf)>,
    /// Pids in it, ascending.
    pids: Vec<u32>,
}

/// Finds the containers behind namespace ids, from the namespace of the
/// thread that created it.
pub struct Attributor {
    socket: RouteSocket,
    netns_dirs: Vec<PathBuf>,
    proc_root: PathBuf,
    docker: Option<DockerClient>,
}

impl Attributor {
    /// An attributor over [`NETNS_DIRS`] and `/proc`, using the Docker API
    /// when `/var/run/docker.sock` exists.
    pub fn new() -> io::Result<Self> {
        Self::with_sources(
            NETNS_DIRS.iter().map(PathBuf::from).collect(),
            PathBuf::from("/proc"),
            DockerClient::detect(),
        )
    }

    /// An attributor over the given namespace directories, procfs mount
    /// and (optional) Docker daemon.
    pub fn with_sources(
        netns_dirs: Vec<PathBuf>,
        proc_root: PathBuf,
        docker: Option<DockerClient>,
    ) -> io::Result<Self> {
        Ok(Self {
            socket: RouteSocket::open(&[])?,
            netns_dirs,
            proc_root,
            docker,
        })
    }

    /// The nsid this namespace gave the namespace of `ns_file` (a
    /// `/var/run/netns/NAME` or `/proc/PID/ns/net`), `None` when it gave it
    /// none (or it is this namespace).
    pub fn nsid_of(&mut self, ns_file: &Path) -> io::Result<Option<i32>> {
        let file = File::open(ns_file)?;
        let mut request = NsidMessage::default();
        let fd = u32::try_from(file.as_raw_fd()).map_err(|_| io::Error::other("negative fd"))?;
        request.attributes.push(NsidAttribute::Fd(fd));
        let sequence = self.socket.send(RouteNetlinkMessage::GetNsId(request), 0)?;
        let deadline = std::time::Instant::now() + NSID_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            if remaining.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "RTM_GETNSID unanswered"));
            }
            let Received::Messages { messages, .. } = self.socket.receive(Some(remaining))? else {
                continue;
            };
            for message in messages {
                if message.header.sequence_number != sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(reply)) => {
                        let id = reply.attributes.iter().find_map(|a| match a {
                            NsidAttribute::Id(id) => Some(*id),
                            _ => None,
                        });
                        return Ok(id.filter(|&id| id >= 0));
                    }
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        let error = error.to_io();
                        return Err(io::Error::new(
                            error.kind(),
                            format!("RTM_GETNSID {}: {error}", ns_file.display()),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every namespace that has an nsid here, with what is known of it.
    pub fn scan(&mut self) -> io::Result<BTreeMap<i32, ContainerInfo>> {
        // Namespaces by (device, inode) of their nsfs file.
        let mut candidates: BTreeMap<(u64, u64), Candidate> = BTreeMap::new();
        for dir in &self.netns_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<(String, PathBuf)> = entries
                .filter_map(Result::ok)
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect();
            names.sort();
            for (name, path) in names {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let candidate = candidates.entry((meta.dev(), meta.ino())).or_default();
                candidate.named.get_or_insert((name, path));
            }
        }
        for pid in self.pids()? {
            let Ok(meta) = std::fs::metadata(self.net_ns_file(pid)) else {
                // Gone, a kernel thread, or not ours to look at.
                continue;
            };
            candidates.entry((meta.dev(), meta.ino())).or_default().pids.push(pid);
        }
        let mut found = BTreeMap::new();
        for candidate in candidates.into_values() {
            let file = match (&candidate.named, candidate.pids.first()) {
                (Some((_, path)), _) => path.clone(),
                (None, Some(&pid)) => self.net_ns_file(pid),
                (None, None) => continue,
            };
            // A stale file (not a namespace) or a process that exited.
            let Ok(Some(nsid)) = self.nsid_of(&file) else {
                continue;
            };
            let mut info = ContainerInfo {
                nsid,
                ..ContainerInfo::default()
            };
            if let Some((name, path)) = candidate.named {
                info.netns = Some(name);
                info.netns_path = Some(path);
            }
            info.pid = candidate.pids.first().copied();
            for &pid in &candidate.pids {
                let cgroup = self.proc_root.join(pid.to_string()).join("cgroup");
                if let Some(id) = std::fs::read_to_string(cgroup)
                    .ok()
                    .and_then(|c| container_id_from_cgroup(&c))
                {
                    info.pid = Some(pid);
                    info.runtime = Some(id.runtime);
                    info.id = Some(id.id);
                    break;
                }
            }
            if let (Some(docker), Some(id)) = (&self.docker, &info.id) {
                // Failing soft: no daemon, a slow one, or a container of
                // another runtime leave name and image unknown.
                if let Ok(Some(container)) = docker.inspect(id) {
                    info.name = Some(container.name);
                    info.image = container.image;
                }
            }
            found.insert(nsid, info);
        }
        Ok(found)
    }

    /// The container behind `link`'s peer: `Ok(None)` when the link has no
    /// peer namespace or nothing with that nsid was found. Scans everything;
    /// to attribute many links, call [`Self::scan`] once.
    pub fn attribute(&mut self, link: &Link) -> io::Result<Option<ContainerInfo>> {
        let Some(nsid) = link.link_netnsid else {
            return Ok(None);
        };
        Ok(self.scan()?.remove(&nsid))
    }

    fn pids(&self) -> io::Result<Vec<u32>> {
        let mut pids: Vec<u32> = std::fs::read_dir(&self.proc_root)?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    fn net_ns_file(&self, pid: u32) -> PathBuf {
        self.proc_root.join(pid.to_string()).join("ns/net")
    }
}

impl std::fmt::Debug for Attributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attributor")
            .field("netns_dirs", &self.netns_dirs)
            .field("proc_root", &self.proc_root)
            .field("docker", &self.docker)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_ID: &str = "3f4e8a0c2b1d9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
    const CRI_ID: &str = "8d1c2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d";

    fn id(runtime: Runtime, id: &str) -> Option<ContainerId> {
        Some(ContainerId { runtime, id: id.into() })
    }

    #[test]
    fn docker_systemd_driver_cgroup_v2() {
        let text = format!("0::/system.slice/docker-{DOCKER_ID}.scope\n");
        assert_eq!(container_id_from_cgroup(&text), id(Runtime::Docker, DOCKER_ID));
    }

    #[test]
    fn docker_cgroupfs_driver_cgroup_v1() {
        let text = format!(
            "12:pids:/docker/{DOCKER_ID}\n11:memory:/docker/{DOCKER_ID}\n\
             10:cpu,cpuacct:/docker/{DOCKER_ID}\n1:name=systemd:/docker/{DOCKER_ID}\n0::/system.slice/containerd.service\n"
        );
        assert_eq!(container_id_from_cgroup(&text), id(Runtime::Docker, DOCKER_ID));
        // cgroup v2 with the cgroupfs driver, and a nested process cgroup.
        assert_eq!(
            container_id_from_cgroup(&format!("0::/docker/{DOCKER_ID}/init\n")),
            id(Runtime::Docker, DOCKER_ID)
        );
    }

    #[test]
    fn containerd_cri_kubepods() {
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d3f6c2a_5b1e_4c8d_9a7f_1e2d3c4b5a69.slice/cri-containerd-{CRI_ID}.scope\n"
        );
        assert_eq!(container_id_from_cgroup(&text), id(Runtime::Containerd, CRI_ID));
        // cgroupfs driver: a bare id under the pod.
        let text = format!("4:memory:/kubepods/besteffort/pod0d3f6c2a-5b1e-4c8d-9a7f-1e2d3c4b5a69/{CRI_ID}\n");
        assert_eq!(container_id_from_cgroup(&text), id(Runtime::Unknown, CRI_ID));
    }

    #[test]
    fn crio_and_podman() {
        let text = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7e1f.slice/crio-{CRI_ID}.scope\n"
        );
        assert_eq!(container_id_from_cgroup(&text), id(Runtime::CriO, CRI_ID));
        let conmon = format!("0::/kubepods.slice/kubepods-besteffort.slice/crio-conmon-{CRI_ID}.scope\n");
        assert_eq!(container_id_from_cgroup(&conmon), None);
        let podman =
            format!("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CRI_ID}.scope/container\n");
        assert_eq!(container_id_from_cgroup(&podman), id(Runtime::Podman, CRI_ID));
    }

    #[test]
    fn nsid_of_a_file_that_is_no_namespace_is_an_error() {
        let mut attributor = Attributor::with_sources(Vec::new(), PathBuf::from("/proc"), None).unwrap();
        let error = attributor.nsid_of(Path::new("/proc/self/status")).unwrap_err();
        assert!(error.to_string().contains("RTM_GETNSID"), "{error}");
        assert!(attributor.nsid_of(Path::new("/nonexistent/netns")).is_err());
    }

    #[test]
    fn host_processes_have_no_container() {
        for text in [
            "0::/\n",
            "0::/init.scope\n",
            "0::/system.slice/docker.service\n",
            "0::/system.slice/containerd.service\n",
            "0::/user.slice/user-0.slice/session-3.scope\n",
            // A 32-hex cgroup of some other manager.
            "4:memory:/process_api/a8354745a0e10adbc9e126c3d9e2e6d8\n9:name=systemd:/\n",
            // 64 hex outside docker/ and kubepods: not trusted.
            &format!("0::/machine.slice/{DOCKER_ID}\n"),
            // Upper-case or short "ids".
            "0::/system.slice/docker-ABCDEF012345.scope\n",
            "0::/system.slice/docker-abc.scope\n",
            "",
            "garbage without colons\n",
        ] {
            assert_eq!(container_id_from_cgroup(text), None, "{text:?}");
        }
    }
}
