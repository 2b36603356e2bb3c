//! The end-to-end harness: a real OpenSSH `sshd` as the target, the real `gatehouse` binary in
//! between, and the real `ssh` client as the user, all on loopback ports in a temporary
//! directory that disappears with the test.

#![allow(dead_code)]

pub mod certs;
pub mod cluster;
pub mod disk;
pub mod interactive;
pub mod postgres;
pub mod receiver;
pub mod slapd;
pub mod slow_proxy;
pub mod web;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The OpenSSH server binary.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A free loopback port for a server a test is about to start.
///
/// A port the kernel hands out for `bind(0)` lies in its ephemeral range, which outgoing
/// connections of other tests draw from too: one of them could take the port between this call
/// and the server's own bind. So ports are drawn below that range, and each is claimed by
/// binding an abstract Unix socket named after it, held until this test process exits (the
/// kernel lets it go then, leaving nothing behind), so that tests running at once in other
/// processes never get the same one.
pub fn free_port() -> u16 {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    static CLAIMED: std::sync::Mutex<Vec<UnixListener>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000, ephemeral_low.clamp(12_000, 32_768));
    for _ in 0..10_000 {
        let port = rand::random_range(low..high);
        let name = format!("gatehouse-tests/port/{port}");
        let claim = SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| UnixListener::bind_addr(&addr));
        if let Ok(claim) = claim
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            CLAIMED.lock().unwrap().push(claim);
            return port;
        }
    }
    panic!("no free loopback port between {low} and {high}");
}

/// The account the tests log in as on the target: the user running the tests.
pub fn login() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Generates an Ed25519 key pair at `path`; returns the public key line.
pub fn keygen(path: &Path, comment: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen failed");
    public_line(path)
}

/// The public key line of a private key file.
pub fn public_line(private: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(private)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -y failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port} after {timeout:?}");
}

/// What a finished command left.
#[derive(Debug)]
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: Vec<u8>,
    /// Everything on stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code (`-1` for a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// stderr as text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `cmd` with `input` on stdin, killing it after `timeout`.
pub fn run(mut cmd: Command, input: &[u8], timeout: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command timed out after {timeout:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// A real OpenSSH server standing in for a host behind the bastion.
pub struct Target {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its host public key line.
    pub host_key: String,
    /// Its working directory (config, keys, log).
    pub dir: PathBuf,
    child: Child,
}

impl Target {
    /// Starts `sshd` trusting `ca_public` for user certificates, with `extra` config lines.
    pub fn start(dir: &Path, ca_public: &str, extra: &str) -> Target {
        std::fs::create_dir_all(dir).unwrap();
        if login() == "root" {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let host_key_path = dir.join("host_ed25519");
        let host_key = keygen(&host_key_path, "target");
        std::fs::write(dir.join("ca.pub"), format!("{ca_public}\n")).unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {dir}/sshd.pid\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AuthorizedKeysFile none\nTrustedUserCAKeys {dir}/ca.pub\nPermitRootLogin prohibit-password\n\
             LogLevel VERBOSE\nAcceptEnv LANG LC_*\nMaxStartups 200\nMaxSessions 50\n{extra}\n",
            hk = host_key_path.display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        wait_for_port(port, Duration::from_secs(10));
        Target {
            port,
            host_key,
            dir: dir.to_owned(),
            child,
        }
    }

    /// The sshd log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// How many sessions the target has accepted so far (logins in its log).
    pub fn accepted_logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user of the bastion with a key pair on disk.
pub struct Person {
    /// Login name.
    pub name: String,
    /// Private key file.
    pub key: PathBuf,
    /// Public key line.
    pub public: String,
}

/// A running `gatehouse serve` with its own directory, policies and data.
pub struct Gatehouse {
    /// Its SSH port on 127.0.0.1.
    pub port: u16,
    /// The deployment directory (gatehouse.toml, policies/, data/, recordings/).
    pub dir: PathBuf,
    /// `known_hosts` pinning the bastion's host key.
    pub known_hosts: PathBuf,
    child: Option<Child>,
}

/// The `gatehouse` binary under test.
pub fn gatehouse_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

impl Gatehouse {
    /// Prepares a deployment in `dir` with `config_extra` appended to the config, and returns
    /// the CA public key (created now) so targets can trust it before the bastion starts.
    pub fn prepare(dir: &Path, config_extra: &str) -> (Gatehouse, String) {
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        let port = free_port();
        std::fs::write(
            dir.join("gatehouse.toml"),
            format!("listen = \"127.0.0.1:{port}\"\n{config_extra}\n"),
        )
        .unwrap();
        let out = run(
            Gatehouse::command_in(dir, &["ca", "public-key"]),
            b"",
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "ca public-key failed: {}", out.err());
        let ca = out.out().trim().to_owned();
        let gh = Gatehouse {
            port,
            dir: dir.to_owned(),
            known_hosts: dir.join("known_hosts"),
            child: None,
        };
        (gh, ca)
    }

    /// A `gatehouse ARGS… --config DIR/gatehouse.toml` command.
    pub fn command_in(dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.args(args)
            .arg("--config")
            .arg(dir.join("gatehouse.toml"));
        cmd.env("RUST_LOG", "info,russh=warn");
        cmd
    }

    /// A command on this deployment.
    pub fn command(&self, args: &[&str]) -> Command {
        Gatehouse::command_in(&self.dir, args)
    }

    /// Writes one policy file.
    pub fn write_policy(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join("policies").join(name), text).unwrap();
    }

    /// Starts `gatehouse serve` and waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gatehouse.log"))
            .unwrap();
        let child = self
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start gatehouse");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("gatehouse exited with {status}:\n{}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut banner = [0u8; 18];
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                if s.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0-Gatehouse") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let host = public_line(&self.dir.join("data/keys/host_ed25519"));
        std::fs::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{} {host}\n", self.port),
        )
        .unwrap();
    }

    /// Stops the server (SIGKILL when `hard`, else SIGTERM) and waits for it.
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut child) = self.child.take() {
            let signal = if hard { "-KILL" } else { "-TERM" };
            let _ = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gatehouse.log")).unwrap_or_default()
    }

    /// An `ssh` command for `person` to this bastion with `args` as the remote command.
    pub fn ssh_command(&self, person: &Person, options: &[&str], args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-p", &self.port.to_string(), "-i"])
            .arg(&person.key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
            .args(options)
            .arg(format!("{}@127.0.0.1", person.name))
            .args(args);
        cmd
    }

    /// Runs `ssh` as `person` with `args`, no stdin, within 60 s.
    pub fn ssh(&self, person: &Person, args: &[&str]) -> Output {
        run(
            self.ssh_command(person, &[], args),
            b"",
            Duration::from_secs(60),
        )
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A key pair in `dir` for each of `names`.
pub fn people(dir: &Path, names: &[&str]) -> Vec<Person> {
    names
        .iter()
        .map(|name| {
            let key = dir.join(format!("{name}_ed25519"));
            let public = keygen(&key, name);
            Person {
                name: (*name).to_owned(),
                key,
                public,
            }
        })
        .collect()
}

/// A whole world: people, one target, a bastion, in one temporary directory.
pub struct World {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// The bastion.
    pub gatehouse: Gatehouse,
    /// The target behind it.
    pub target: Target,
    /// The CA public key line.
    pub ca: String,
}

impl World {
    /// Generates keys for `names`, prepares the bastion with `config_extra`, starts a target.
    pub fn new(names: &[&str], config_extra: &str) -> (World, Vec<Person>) {
        World::with_target_config(names, config_extra, |_| String::new())
    }

    /// Like [`World::new`], with `target_extra(dir)` appended to the target's `sshd_config`.
    /// `dir` is the world's temporary directory, where `target_extra` may create files that
    /// the configuration lines refer to (the target itself lives in `dir/target`).
    pub fn with_target_config(
        names: &[&str],
        config_extra: &str,
        target_extra: impl FnOnce(&Path) -> String,
    ) -> (World, Vec<Person>) {
        let tmp = tempfile::tempdir().unwrap();
        let people = people(tmp.path(), names);
        let (gatehouse, ca) = Gatehouse::prepare(&tmp.path().join("bastion"), config_extra);
        let extra = target_extra(tmp.path());
        let target = Target::start(&tmp.path().join("target"), &ca, &extra);
        (
            World {
                tmp,
                gatehouse,
                target,
                ca,
            },
            people,
        )
    }

    /// A started bastion (with `config_extra`) whose one user, alice (group `sre`), may open
    /// `web-01` as the test's login under the role `role` without approval, and already holds
    /// a one-hour grant for it. `role_lines` are the role's further lines (`shell`,
    /// `commands`, `record_input`, ...), each ending in a newline.
    pub fn with_granted_role(config_extra: &str, role: &str, role_lines: &str) -> (World, Person) {
        let (mut world, mut people) = World::new(&["alice"], config_extra);
        let alice = people.pop().unwrap();
        let policy = format!(
            "{}{}[[role]]\nname = \"{role}\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\n\
             login = \"{}\"\napprovals = 0\n{role_lines}",
            user_toml(&alice, &["sre"]),
            world.target_toml("web-01"),
            login(),
        );
        world.gatehouse.write_policy("main.toml", &policy);
        world.gatehouse.start();
        let out = world.gatehouse.ssh(
            &alice,
            &[
                "request",
                "web-01",
                "--for",
                "1h",
                "--reason",
                "end-to-end",
                "test",
            ],
        );
        assert_eq!(out.code(), 0, "{}", out.err());
        (world, alice)
    }

    /// The `[[target]]` table for the world's target under `name`.
    pub fn target_toml(&self, name: &str) -> String {
        format!(
            "[[target]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = {}\nhost_keys = [\"{}\"]\n\n",
            self.target.port, self.target.host_key
        )
    }
}

/// The `[[user]]` table for `person` in `groups`.
pub fn user_toml(person: &Person, groups: &[&str]) -> String {
    let groups: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
    format!(
        "[[user]]\nname = \"{}\"\nkeys = [\"{}\"]\ngroups = [{}]\n\n",
        person.name,
        person.public,
        groups.join(", ")
    )
}

/// SHA-256 of bytes, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
