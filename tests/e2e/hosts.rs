//! Several hosts on one machine: each "host" is a Linux network namespace wired to a bridge
//! by a veth pair, and runs its own `vane scheduler` against one PostgreSQL database. Cutting
//! a host's veth partitions it from the database; killing every process in its namespace is
//! the host losing power.
//!
//! PostgreSQL listens on loopback only, which a namespace cannot reach, so [`Hosts`] runs a
//! TCP forwarder on the bridge's address. These tests need root and iproute2's `ip`; without
//! them they fail and say so, since a skipped test would prove nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Backend, Daemon, Project, wait_for, wait_for_every};

/// Long enough for any machine; only a hang gets there.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

const NEEDS: &str = "the multi-host tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and \
                     iproute2's `ip` on PATH, to create network namespaces, veth pairs and a \
                     bridge";

/// `ip ARGS...`, which must succeed; its stdout.
#[track_caller]
fn ip(args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` ({e}): {NEEDS}"));
    assert!(
        output.status.success(),
        "`ip {}` failed ({}): {}; note that {NEEDS}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `ip ARGS...` while tearing down, where the thing may be gone already and a panic in a
/// drop would abort the test run and hide the real failure.
fn ip_quiet(args: &[&str]) -> Option<String> {
    let output = Command::new("ip").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The pids of every process in namespace `ns`.
fn pids_in(ns: &str) -> Vec<i32> {
    ip_quiet(&["netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// SIGKILLs every process in `ns` until none is left (a dying process may have forked), for
/// at most `tries` rounds; whether the namespace ended up empty.
fn kill_everything_in(ns: &str, tries: usize) -> bool {
    for _ in 0..tries {
        let pids = pids_in(ns);
        if pids.is_empty() {
            return true;
        }
        for pid in pids {
            // It may have exited since it was listed, which is what we want anyway.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pids_in(ns).is_empty()
}

/// Where the test databases' server listens, from the URL `TestDb` connects to.
fn postgres_server() -> SocketAddr {
    let url = std::env::var("VANE_TEST_PG")
        .unwrap_or_else(|_| vane_store::testing::DEFAULT_URL.to_owned());
    let (_, host_port, _) = split_url(&url);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve the PostgreSQL server {host_port} of {url}"))
}

/// `postgres://user@host:port/db?q` as (`postgres://user@`, `host:port`, `/db?q`).
fn split_url(url: &str) -> (&str, &str, &str) {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let host_start = url[authority_start..authority_end]
        .rfind('@')
        .map_or(authority_start, |i| authority_start + i + 1);
    (
        &url[..host_start],
        &url[host_start..authority_end],
        &url[authority_end..],
    )
}

/// Copies TCP connections made to its address (on the bridge) to the PostgreSQL server on
/// loopback, until dropped.
struct Forwarder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Both ends of every connection, so that dropping the forwarder ends copies blocked on a
    /// peer that will never speak again (a cut or killed host sends no FIN).
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accepting: Option<JoinHandle<()>>,
}

impl Forwarder {
    fn start(on: Ipv4Addr, upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind((on, 0))
            .unwrap_or_else(|e| panic!("cannot listen on the bridge address {on}: {e}"));
        let addr = listener.local_addr().expect("the forwarder's address");
        // Non-blocking, so the accepting thread sees `stop` without a connection to wake it.
        listener
            .set_nonblocking(true)
            .expect("make the forwarder's listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let accepting = {
            let (stop, streams) = (stop.clone(), streams.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => forward(client, upstream, &streams),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => eprintln!("forwarder: accept failed: {e}"),
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            streams,
            accepting: Some(accepting),
        }
    }
}

/// Connects `client` to `upstream`, one copying thread per direction.
fn forward(client: TcpStream, upstream: SocketAddr, streams: &Mutex<Vec<TcpStream>>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        // Dropping the client refuses it, as the server itself would.
        return;
    };
    // The listener is non-blocking; the copies block.
    if client.set_nonblocking(false).is_err() {
        return;
    }
    let clones = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    );
    let (Ok(c1), Ok(s1), Ok(c2), Ok(s2)) = clones else {
        return;
    };
    streams
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend([client, server]);
    std::thread::spawn(move || pipe(c1, s1));
    std::thread::spawn(move || pipe(s2, c2));
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    // PostgreSQL's protocol has no use for a half-closed connection: either end closing ends
    // it, which also stops the copy in the other direction.
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for stream in self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

/// Namespaces are named `vane-e2e-PID-N-hI`, bridges `vnbPIDnN` and root-side veths
/// `vnhPIDnNhI` (PID in hex: interface names are at most 15 bytes).
const NS_PREFIX: &str = "vane-e2e-";
const BRIDGE_PREFIX: &str = "vnb";
const VETH_PREFIX: &str = "vnh";

/// Removes what test processes that were killed before their drops ran left behind, so a
/// crashed run does not accumulate namespaces and links. Only names whose pid is gone.
fn sweep_leftovers() {
    let dead = |pid: Option<u32>| pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
    for line in ip_quiet(&["netns", "list"]).unwrap_or_default().lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let pid = ns
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse().ok());
        if dead(pid) {
            kill_everything_in(ns, 50);
            ip_quiet(&["netns", "del", ns]);
        }
    }
    for line in ip_quiet(&["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
    {
        // `7: vnb1f2an0: <...` or `8: vnh1f2an0h0@if2: <...`
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        // Only names of exactly our shape: PID in hex, `n`, digits, and `h` digits for a veth.
        let pid = [BRIDGE_PREFIX, VETH_PREFIX]
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('n'))
            .filter(|(_, n)| {
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                match n.split_once('h') {
                    Some((n, i)) => name.starts_with(VETH_PREFIX) && digits(n) && digits(i),
                    None => name.starts_with(BRIDGE_PREFIX) && digits(n),
                }
            })
            .and_then(|(pid, _)| u32::from_str_radix(pid, 16).ok());
        if dead(pid) {
            ip_quiet(&["link", "del", name]);
        }
    }
}

/// A /24 of 10.0.0.0/8 that no interface of this machine uses, starting the search at
/// `seed`, so that tests running in parallel (in this process or another) pick different
/// ones.
fn free_subnet(seed: u32) -> (u8, u8) {
    // 10.100.0.0 to 10.199.255.0: clear of the low ranges networks tend to use.
    const SUBNETS: u32 = 100 * 256;
    for k in 0..SUBNETS {
        let key = seed.wrapping_add(k) % SUBNETS;
        let (x, y) = (100 + key / 256, key % 256);
        let prefix = format!("10.{x}.{y}.0/24");
        if ip(&["-o", "-4", "addr", "show", "to", &prefix])
            .trim()
            .is_empty()
        {
            return (x as u8, y as u8);
        }
    }
    panic!("no free /24 in 10.100.0.0/16 to 10.199.0.0/16 for the simulated hosts");
}

/// Hosts on one machine: a bridge in the root namespace and `count` network namespaces wired
/// to it. Everything is removed when dropped, however the test ends.
pub(crate) struct Hosts {
    bridge: Option<String>,
    subnet: (u8, u8),
    namespaces: Vec<String>,
    /// The root-namespace end of each host's veth pair; inside, the host sees `eth0`.
    veths: Vec<String>,
    forwarder: Option<Forwarder>,
}

impl Hosts {
    /// `count` hosts (at most 10), each with its own address, reaching the test PostgreSQL
    /// server through the forwarder on the bridge.
    pub(crate) fn new(count: usize) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        assert!(count <= 10, "at most 10 hosts (names must fit 15 bytes)");
        let root = fs::read_to_string("/proc/self/status").is_ok_and(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                == Some("0")
        });
        assert!(root, "not running as root: {NEEDS}");
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 100, "at most 100 sets of hosts per test process");
        sweep_leftovers();
        let subnet = free_subnet(pid.wrapping_mul(16).wrapping_add(n));
        let bridge_ip = Ipv4Addr::new(10, subnet.0, subnet.1, 1);
        // Owned by `hosts` as soon as each piece exists, so a failure half-way through still
        // removes what was made.
        let mut hosts = Self {
            bridge: None,
            subnet,
            namespaces: Vec::new(),
            veths: Vec::new(),
            forwarder: None,
        };
        let tag = format!("{pid:x}n{n}");
        let bridge = format!("{BRIDGE_PREFIX}{tag}");
        ip(&["link", "add", &bridge, "type", "bridge"]);
        hosts.bridge = Some(bridge.clone());
        ip(&["addr", "add", &format!("{bridge_ip}/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..count {
            let ns = format!("{NS_PREFIX}{pid}-{n}-h{i}");
            ip(&["netns", "add", &ns]);
            hosts.namespaces.push(ns.clone());
            let veth = format!("{VETH_PREFIX}{tag}h{i}");
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            hosts.veths.push(veth.clone());
            ip(&["link", "set", &veth, "master", &bridge]);
            ip(&["link", "set", &veth, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let addr = format!("{}/24", hosts.ip_of(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &bridge_ip.to_string(),
            ]);
        }
        hosts.forwarder = Some(Forwarder::start(bridge_ip, postgres_server()));
        hosts
    }

    /// Host `i`'s address on the bridge.
    pub(crate) fn ip_of(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 10 + i as u8)
    }

    /// The name of host `i`'s network namespace, for `ip netns exec`.
    pub(crate) fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// The project's database URL as the hosts reach it: through the forwarder.
    pub(crate) fn url_for(&self, p: &Project) -> String {
        assert_eq!(
            p.backend(),
            Backend::Postgres,
            "hosts share a PostgreSQL database; a SQLite file is one machine's"
        );
        let url = p.database();
        let (head, _, path) = split_url(&url);
        let forwarder = self.forwarder.as_ref().expect("the forwarder runs");
        format!("{head}{}{path}", forwarder.addr)
    }

    /// Starts `vane scheduler ARGS...` on host `i`, as `host-I`, with a state folder of its
    /// own (`hosts/host-I` in the project): hosts do not share a disk, so no host finds
    /// another's logs or work by accident.
    pub(crate) fn scheduler(&self, p: &Project, i: usize, args: &[&str]) -> Daemon {
        let url = self.url_for(p);
        let name = format!("host-{i}");
        let state = host_state(p, i);
        let state = state.to_str().expect("a UTF-8 temporary path");
        p.scheduler_via(
            &["ip", "netns", "exec", self.namespace(i)],
            &[
                ("VANE_DB", &url),
                ("VANE_HOST", &name),
                ("VANE_STATE_DIR", state),
            ],
            args,
        )
    }

    /// Starts `vane agent --labels LABELS --slots SLOTS` on host `i`, as `host-I`. Agents share
    /// the project's folder with the scheduler, as they share a network file system in
    /// production: the tasks' logs, work folder and content store.
    pub(crate) fn agent(&self, p: &Project, i: usize, labels: &str, slots: u32) -> Daemon {
        let url = self.url_for(p);
        let name = format!("host-{i}");
        let slots = slots.to_string();
        p.daemon_via(
            &["ip", "netns", "exec", self.namespace(i)],
            &[("VANE_DB", &url), ("VANE_HOST", &name)],
            &["agent", "--labels", labels, "--slots", &slots],
        )
    }

    /// [`Hosts::agent`] with a state folder of its own (`hosts/host-I`), as on a host that
    /// shares no disk with the scheduler: logs reach others only through the storage.
    pub(crate) fn agent_on_own_disk(&self, p: &Project, i: usize, labels: &str) -> Daemon {
        let url = self.url_for(p);
        let name = format!("host-{i}");
        let state = host_state(p, i);
        p.daemon_via(
            &["ip", "netns", "exec", self.namespace(i)],
            &[
                ("VANE_DB", &url),
                ("VANE_HOST", &name),
                (
                    "VANE_STATE_DIR",
                    state.to_str().expect("a UTF-8 temporary path"),
                ),
            ],
            &["agent", "--labels", labels, "--slots", "2"],
        )
    }

    /// [`Hosts::agent_on_own_disk`], with `hidden` (a folder of the project, such as the
    /// scheduler's work folder) replaced by an empty one of the agent's own (a tmpfs in a
    /// mount namespace): what the agent's tasks write there, the scheduler never sees, as on
    /// hosts that share no disk.
    pub(crate) fn agent_without(&self, p: &Project, i: usize, hidden: &Path) -> Daemon {
        let url = self.url_for(p);
        let name = format!("host-{i}");
        let state = host_state(p, i);
        fs::create_dir_all(hidden).expect("create the folder to hide");
        let mount = format!(
            "mount -t tmpfs tmpfs '{}' && exec \"$0\" \"$@\"",
            hidden.display()
        );
        p.daemon_via(
            &[
                "ip",
                "netns",
                "exec",
                self.namespace(i),
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &mount,
            ],
            &[
                ("VANE_DB", &url),
                ("VANE_HOST", &name),
                (
                    "VANE_STATE_DIR",
                    state.to_str().expect("a UTF-8 temporary path"),
                ),
            ],
            &["agent", "--labels", "", "--slots", "2"],
        )
    }

    /// The root namespace's address on the bridge, which every host reaches: where a server
    /// the hosts share (an S3 store) listens.
    pub(crate) fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 1)
    }

    /// Partitions host `i` from the others and the database: packets in flight and new ones
    /// are lost, and nothing tells its processes.
    pub(crate) fn cut(&self, i: usize) {
        ip(&["link", "set", &self.veths[i], "down"]);
    }

    /// Ends [`Hosts::cut`], once host `i` reaches the bridge again (for a moment after the
    /// link comes up, connecting fails with "No route to host"). Connections that timed out
    /// meanwhile stay broken.
    pub(crate) fn restore(&self, i: usize) {
        ip(&["link", "set", &self.veths[i], "up"]);
        let forwarder = self.forwarder.as_ref().expect("the forwarder runs").addr;
        let probe = format!("exec 3<>/dev/tcp/{}/{}", forwarder.ip(), forwarder.port());
        wait_for(
            &format!("host {i} to reach the bridge again (probed with bash's /dev/tcp)"),
            PATIENCE,
            || {
                Command::new("ip")
                    .args(["netns", "exec", self.namespace(i), "timeout", "2"])
                    .args(["bash", "-c", &probe])
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run `ip netns exec` ({e}): {NEEDS}"))
                    .status
                    .success()
                    .then_some(())
            },
        );
    }

    /// Host `i` loses power: every process in it dies at once with SIGKILL.
    pub(crate) fn kill_host(&self, i: usize) {
        let ns = self.namespace(i);
        wait_for(&format!("every process in {ns} to die"), PATIENCE, || {
            kill_everything_in(ns, 1).then_some(())
        });
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            if !kill_everything_in(ns, 250) {
                eprintln!(
                    "hosts: processes in {ns} survived SIGKILL: {:?}",
                    pids_in(ns)
                );
            }
            ip_quiet(&["netns", "del", ns]);
        }
        // Deleting a namespace deletes its end of a veth pair, and so the pair; these are
        // for a namespace that could not be deleted.
        for veth in &self.veths {
            ip_quiet(&["link", "del", veth]);
        }
        if let Some(bridge) = &self.bridge {
            ip_quiet(&["link", "del", bridge]);
        }
        self.forwarder.take();
    }
}

/// Host `i`'s state folder (logs, work, artifacts) for `p`, as vane records paths in it.
pub(crate) fn host_state(p: &Project, i: usize) -> PathBuf {
    p.root().join("hosts").join(format!("host-{i}"))
}

/// Every `ip netns list` and `ip link` name, for checking that hosts leave nothing behind.
fn network_names() -> (BTreeSet<String>, BTreeSet<String>) {
    let first_words = |text: String| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    let namespaces = first_words(ip(&["netns", "list"]));
    let links = ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect();
    (namespaces, links)
}

/// `psql` from inside host `i` against the project's database; whether it connected and ran.
fn psql_from(hosts: &Hosts, p: &Project, i: usize) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            hosts.namespace(i),
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
        ])
        .args(["-d", &hosts.url_for(p), "-c", "SELECT 1"])
        // A cut host never hears back; give up soon rather than wait for TCP to.
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .expect("run psql in a namespace")
        .status
        .success()
}

#[test]
fn hosts_reach_the_database_until_cut_and_leave_nothing_behind_when_a_test_panics() {
    const DELIBERATE: &str = "a test failing with hosts up";
    let p = Project::on(Backend::Postgres);
    let mut sleeper = None;
    let mut made = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let hosts = Hosts::new(2);
        let mut names: BTreeSet<String> = hosts.namespaces.iter().cloned().collect();
        names.extend(hosts.veths.iter().cloned());
        names.extend(hosts.bridge.clone());
        made = Some(names);
        assert!(psql_from(&hosts, &p, 0), "host 0 reaches the database");
        assert!(psql_from(&hosts, &p, 1), "host 1 reaches the database");
        hosts.cut(1);
        assert!(psql_from(&hosts, &p, 0), "host 0 is not cut");
        assert!(!psql_from(&hosts, &p, 1), "host 1 is cut off");
        hosts.restore(1);
        assert!(
            psql_from(&hosts, &p, 1),
            "host 1 reaches the database again"
        );
        let sleep_on = |i: usize| {
            let child = Command::new("ip")
                .args(["netns", "exec", hosts.namespace(i), "sleep", "1000"])
                .spawn()
                .expect("start sleep in a namespace");
            // `ip` enters the namespace only after it started.
            let pid = i32::try_from(child.id()).expect("a pid");
            wait_for("the sleeper to enter its namespace", PATIENCE, || {
                pids_in(hosts.namespace(i)).contains(&pid).then_some(())
            });
            child
        };
        let mut powered_off = sleep_on(1);
        hosts.kill_host(1);
        let status = powered_off.wait().expect("reap the sleeper");
        assert!(!status.success(), "the host's process was killed: {status}");
        sleeper = Some(sleep_on(0));
        std::panic::panic_any(DELIBERATE);
    }));
    match outcome {
        Err(payload) if payload.downcast_ref::<&str>() == Some(&DELIBERATE) => {}
        Err(payload) => std::panic::resume_unwind(payload),
        Ok(()) => unreachable!("the closure panics"),
    }
    let mut sleeper = sleeper.expect("the sleeper started");
    let status = wait_for("the sleeper on host 0 to die", PATIENCE, || {
        sleeper.try_wait().expect("wait for the sleeper")
    });
    assert!(!status.success(), "the host's process was killed: {status}");
    let made = made.expect("hosts were made");
    let (namespaces, links) = network_names();
    let left: Vec<&String> = made
        .iter()
        .filter(|n| namespaces.contains(*n) || links.contains(*n))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A DAG ticking every two seconds with a task that ends at once.
const EVERY_TWO_SECONDS: &str = r#"
[dag]
schedule = "*/2 * * * * *"

[tasks.hi]
command = "echo hi"
"#;

/// Rows of `p.sql(...)`, each split on `|`.
pub(crate) fn rows(p: &Project, sql: &str) -> Vec<Vec<String>> {
    p.sql(sql)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

#[test]
fn two_schedulers_share_a_dag_every_two_seconds_without_duplicates_or_lost_ticks() {
    let p = Project::on(Backend::Postgres).dag("tick", EVERY_TWO_SECONDS);
    let hosts = Hosts::new(2);
    let mut daemons: Vec<Daemon> = (0..2).map(|i| hosts.scheduler(&p, i, &[])).collect();
    for daemon in &mut daemons {
        daemon.wait_for_log(&["Scheduler starting."], PATIENCE);
    }
    // Thirty ticks are a minute of two schedulers racing for every one of them.
    wait_for_every(
        Duration::from_millis(500),
        "30 decided ticks",
        Duration::from_secs(180),
        || {
            for daemon in &mut daemons {
                assert!(
                    daemon.is_running(),
                    "a scheduler exited; its log:\n{}",
                    daemon.log()
                );
            }
            let ticks: usize = p
                .sql("SELECT count(*) FROM ticks WHERE dag_id = 'tick'")
                .trim()
                .parse()
                .expect("a count");
            (ticks >= 30).then_some(())
        },
    );
    for daemon in &mut daemons {
        assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
    }
    let logs = || {
        daemons
            .iter()
            .enumerate()
            .map(|(i, d)| format!("--- host-{i}\n{}", d.log()))
            .collect::<String>()
    };

    let duplicates =
        p.sql("SELECT dag_id, logical_date, count(*) FROM runs GROUP BY 1, 2 HAVING count(*) > 1");
    assert_eq!(duplicates, "", "logical dates with two runs\n{}", logs());

    let ticks: Vec<i64> = p
        .sql(
            "SELECT extract(epoch FROM logical_date)::bigint FROM ticks WHERE dag_id = 'tick' \
             ORDER BY logical_date",
        )
        .lines()
        .map(|t| t.parse().expect("a tick's epoch"))
        .collect();
    let gaps: Vec<(i64, i64)> = ticks
        .windows(2)
        .filter(|w| w[1] - w[0] != 2)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        gaps.is_empty(),
        "ticks missing between these (epoch seconds) of {ticks:?}: {gaps:?}\n{}",
        logs()
    );
    let unrun = p.sql(
        "SELECT t.logical_date, t.decision, t.reason FROM ticks t LEFT JOIN runs r \
         ON r.dag_id = t.dag_id AND r.logical_date = t.logical_date \
         WHERE t.dag_id = 'tick' AND (t.decision <> 'run' OR r.id IS NULL)",
    );
    assert_eq!(unrun, "", "ticks without a run\n{}", logs());

    // A second attempt of a task that cannot fail would be a run executed twice.
    let twice =
        p.sql("SELECT run_id, task_id, count(*) FROM attempts GROUP BY 1, 2 HAVING count(*) > 1");
    assert_eq!(twice, "", "tasks attempted more than once\n{}", logs());
    // Both schedulers drain their runs before exiting, but a run created just before the
    // last one stopped may be left queued, never started.
    let unfinished = p.sql(
        "SELECT r.id, r.state, count(a.id) FROM runs r LEFT JOIN attempts a ON a.run_id = r.id \
         GROUP BY r.id, r.state \
         HAVING NOT ((r.state = 'success' AND count(a.id) = 1) \
                     OR (r.state = 'queued' AND count(a.id) = 0))",
    );
    assert_eq!(
        unfinished,
        "",
        "runs neither succeeded with one attempt nor left queued\n{}",
        logs()
    );

    let pids: BTreeSet<String> = daemons.iter().map(|d| d.pid().to_string()).collect();
    let schedulers = rows(
        &p,
        "SELECT pid, host, stopped_at IS NOT NULL FROM schedulers ORDER BY pid",
    );
    let recorded: BTreeSet<String> = schedulers.iter().map(|r| r[0].clone()).collect();
    assert_eq!(recorded, pids, "the schedulers table: {schedulers:?}");
    for row in &schedulers {
        assert_eq!(row[2], "t", "a scheduler that stopped cleanly: {row:?}");
    }
    let names: BTreeSet<&str> = schedulers.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["host-0", "host-1"]),
        "each scheduler records the host VANE_HOST names"
    );

    let runs: usize = p
        .sql("SELECT count(*) FROM runs WHERE dag_id = 'tick'")
        .trim()
        .parse()
        .expect("a count");
    assert!(runs >= 25, "only {runs} runs\n{}", logs());
    // Each host keeps its task logs in its own state folder, so where an attempt's log is
    // tells which host ran it, whatever host name vane records.
    let mut executed = [0; 2];
    for log in p.sql("SELECT log_path FROM attempts").lines() {
        let host = (0..2)
            .find(|i| Path::new(log).starts_with(host_state(&p, *i)))
            .unwrap_or_else(|| panic!("an attempt logged outside both hosts' folders: {log}"));
        let text = fs::read_to_string(log).unwrap_or_else(|e| panic!("read {log}: {e}"));
        assert!(
            text.contains("hi"),
            "{log} holds the task's output: {text:?}"
        );
        executed[host] += 1;
    }
    let attempt_hosts = rows(
        &p,
        "SELECT host, count(*) FROM attempts GROUP BY 1 ORDER BY 1",
    );
    // Which host ran how many is the schedulers' race to win, not a property to assert.
    eprintln!(
        "{runs} runs over {} ticks; attempts run by host-0 and host-1: {executed:?}; \
         attempts by recorded host: {attempt_hosts:?}; \
         schedulers (pid, host, stopped): {schedulers:?}",
        ticks.len()
    );
}

/// A lease short enough for a test to wait out, long enough for a loaded machine.
pub(crate) const SHORT_LEASE: &str = "[scheduler]\nlease_ttl = \"6s\"\n";

/// One task that, on its first attempt, notes its pid and sleeps far longer than the test;
/// on a later attempt (the retry after its host was lost) it succeeds at once.
const SLOW_ONCE: &str = r#"
[tasks.train]
command = "if [ -e first.pid ]; then echo retried; exit 0; fi; echo $$ > first.pid; exec sleep 600"
retries = 1
retry_delay = "1s"
"#;

/// The one run of DAG `slow`, started on host 0 alone, once its first attempt's process runs;
/// that process's pid.
fn run_started_on_host_zero(p: &Project, daemon: &mut Daemon) -> i32 {
    daemon.wait_for_log(&["Lease taken."], PATIENCE);
    p.vane(&["trigger", "slow"]).success();
    let pid = daemon.wait_for("the first attempt to start on host-0", PATIENCE, || {
        fs::read_to_string(p.path().join("work/first.pid"))
            .or_else(|_| fs::read_to_string(first_pid_anywhere(p)?))
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    });
    let owner = p.sql("SELECT owner_host FROM runs");
    assert_eq!(owner.trim(), "host-0", "the run's owner");
    pid
}

/// Where the task wrote `first.pid`: its work folder is under the host's state folder.
fn first_pid_anywhere(p: &Project) -> std::io::Result<PathBuf> {
    p.find_files_named("first.pid")
        .into_iter()
        .next()
        .ok_or_else(|| std::io::Error::from(ErrorKind::NotFound))
}

/// Waits for the run's retry to succeed on the host `daemon` runs on; each attempt as (number,
/// state, host, reason, the run's state).
fn retried_on(p: &Project, daemon: &mut Daemon) -> Vec<Vec<String>> {
    daemon.wait_for(
        "the run to succeed on host-1",
        Duration::from_secs(90),
        || {
            let rows = rows(
                p,
                "SELECT a.attempt, a.state, a.host, coalesce(a.reason, ''), r.state \
             FROM attempts a JOIN runs r ON r.id = a.run_id ORDER BY a.attempt",
            );
            (rows.len() == 2 && rows[1][1] == "success" && rows[1][4] == "success").then_some(rows)
        },
    )
}

fn status_json(p: &Project) -> serde_json::Value {
    p.vane(&["status", "--json"]).success().json()
}

/// The scheduler of `host` as `vane status --json` lists it, if it does.
fn scheduler_of(status: &serde_json::Value, host: &str) -> Option<serde_json::Value> {
    status["schedulers"]
        .as_array()?
        .iter()
        .find(|s| s["host"] == host && s["stopped_at"].is_null())
        .cloned()
}

pub(crate) fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
}

#[test]
fn a_host_that_loses_power_mid_run_has_its_run_adopted_and_retried_on_the_other() {
    let p = Project::on(Backend::Postgres).dag("slow", SLOW_ONCE);
    p.write("vane.toml", SHORT_LEASE);
    let hosts = Hosts::new(2);
    let mut first = hosts.scheduler(&p, 0, &[]);
    let task = run_started_on_host_zero(&p, &mut first);
    let mut second = hosts.scheduler(&p, 1, &[]);
    second.wait_for_log(&["Lease taken."], PATIENCE);
    // Both are seen up, each with its lease; host-0 owns the run.
    let status = wait_for("both schedulers listed with their leases", PATIENCE, || {
        let status = status_json(&p);
        let (a, b) = (
            scheduler_of(&status, "host-0")?,
            scheduler_of(&status, "host-1")?,
        );
        (a["lease"]["state"] == "held" && b["lease"]["state"] == "held").then_some(status)
    });
    assert_eq!(scheduler_of(&status, "host-0").unwrap()["runs_owned"], 1);
    assert_eq!(scheduler_of(&status, "host-1").unwrap()["runs_owned"], 0);

    let lost_at = std::time::Instant::now();
    hosts.kill_host(0);
    assert!(!process_exists(task), "the task died with its host");
    let attempts = retried_on(&p, &mut second);
    eprintln!(
        "host-0 lost power; its run was adopted and retried to success on host-1 {:.1} s later",
        lost_at.elapsed().as_secs_f64()
    );
    assert_eq!(attempts[0][1], "failed", "{attempts:?}");
    assert_eq!(attempts[0][2], "host-0", "{attempts:?}");
    assert!(attempts[0][3].contains("lost"), "{attempts:?}");
    assert_eq!(attempts[1][2], "host-1", "{attempts:?}");
    assert_eq!(attempts[1][4], "success", "{attempts:?}");
    // The adopter says why, and the dead host's lease is shown expired.
    second.wait_for_log(&["Adopting a run"], PATIENCE);
    let status = status_json(&p);
    assert_eq!(
        scheduler_of(&status, "host-0").unwrap()["lease"]["state"],
        "expired",
        "{status:#}"
    );
}

#[test]
fn a_scheduler_cut_off_past_its_lease_kills_its_task_and_its_late_writes_are_refused() {
    let p = Project::on(Backend::Postgres).dag("slow", SLOW_ONCE);
    p.write("vane.toml", SHORT_LEASE);
    let hosts = Hosts::new(2);
    let mut first = hosts.scheduler(&p, 0, &[]);
    let task = run_started_on_host_zero(&p, &mut first);
    let mut second = hosts.scheduler(&p, 1, &[]);
    second.wait_for_log(&["Lease taken."], PATIENCE);

    hosts.cut(0);
    // Cut off, host-0 cannot renew: once a whole lease has passed it stops acting as the
    // run's owner on its own and kills the task, even before anyone else adopts the run.
    first.wait_for_log(&["Lease lost"], Duration::from_secs(60));
    wait_for("the cut-off host to kill its task", PATIENCE, || {
        (!process_exists(task)).then_some(())
    });
    let attempts = retried_on(&p, &mut second);
    let before = p.sql(
        "SELECT a.attempt, a.state, a.reason, a.ended_at, r.state, r.owner_token FROM attempts a \
         JOIN runs r ON r.id = a.run_id ORDER BY a.attempt",
    );

    // The partition heals: host-0's writes as the run's old owner are refused, it says so,
    // takes a new lease and goes on scheduling.
    hosts.restore(0);
    first.wait_for_log(&["no longer ours"], Duration::from_secs(90));
    let status = wait_for(
        "host-0 holding a lease again",
        Duration::from_secs(60),
        || {
            let status = status_json(&p);
            (scheduler_of(&status, "host-0")?["lease"]["state"] == "held").then_some(status)
        },
    );
    assert!(first.is_running(), "host-0 carries on: {}", first.log());
    let after = p.sql(
        "SELECT a.attempt, a.state, a.reason, a.ended_at, r.state, r.owner_token FROM attempts a \
         JOIN runs r ON r.id = a.run_id ORDER BY a.attempt",
    );
    assert_eq!(
        before,
        after,
        "the late owner changed nothing\n{}",
        first.log()
    );
    assert_eq!(attempts[0][2], "host-0", "{attempts:?}");
    assert!(attempts[0][3].contains("lost"), "{attempts:?}");
    assert_eq!(attempts[1][2], "host-1", "{attempts:?}");
    let old_lease = rows(
        &p,
        "SELECT id, expires_at < now() FROM leases WHERE host = 'host-0' ORDER BY acquired_at",
    );
    assert!(
        old_lease.len() >= 2,
        "a new lease after the lost one: {old_lease:?} {status:#}"
    );
    assert_eq!(old_lease[0][1], "t", "{old_lease:?}");
}
