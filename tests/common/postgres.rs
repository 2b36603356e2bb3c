//! A real PostgreSQL server for the end-to-end tests: `initdb` into a temporary directory, then
//! `postgres` itself as a child of the test on a free loopback port, so that a test can stop,
//! kill and restart it under a running bastion, and nothing of it outlives the test.
//!
//! PostgreSQL refuses to run as root, and the tests run as root in CI: there the server runs as
//! the `postgres` account (created by the Debian package), or `nobody` without it, and owns the
//! temporary directory. The system's own PostgreSQL service is never used.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::{Output, free_port, run};

/// The superuser `initdb` creates; every URL logs in as it (trust authentication, loopback
/// only, so no password).
pub const PG_USER: &str = "gatehouse";

/// How long the server may take to accept connections (the test machine is small and busy).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts at a free port: another test may take the one picked before the server binds it.
const PORT_ATTEMPTS: u32 = 5;

/// A PostgreSQL server of the test's own, in a temporary directory that disappears with it.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    account: Option<Account>,
    /// `cluster_name`, unique to this server: its processes carry it in their titles.
    cluster: String,
    child: Option<Child>,
    /// Last, so the directory goes only after the server has stopped.
    dir: tempfile::TempDir,
}

/// The unprivileged account the server runs as when the tests run as root.
#[derive(Clone, Copy, Debug)]
struct Account {
    name: &'static str,
    uid: u32,
    gid: u32,
}

impl Postgres {
    /// Creates a fresh cluster (`initdb`) and starts a server on it, listening on 127.0.0.1
    /// only; returns once it accepts connections. Panics (fails the test) when the PostgreSQL
    /// server binaries are missing, or the server does not come up, with its log.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let account = server_account();
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL");
        std::fs::create_dir(dir.path().join("sockets")).unwrap();
        if let Some(account) = account {
            for path in [dir.path().to_owned(), dir.path().join("sockets")] {
                std::os::unix::fs::chown(&path, Some(account.uid), Some(account.gid))
                    .unwrap_or_else(|e| panic!("chown {} for PostgreSQL: {e}", path.display()));
            }
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", PG_USER, "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions"])
            .current_dir(dir.path());
        as_account(&mut initdb, account);
        let out = run(initdb, b"", Duration::from_secs(120));
        assert!(
            out.status.success(),
            "initdb into {} as {} failed ({}); the directory and its parents must be reachable \
             by that account:\n{}{}",
            dir.path().display(),
            account.map_or("the current user", |a| a.name),
            out.code(),
            out.out(),
            out.err()
        );
        let mut pg = Postgres {
            port: 0,
            bin,
            account,
            cluster: cluster_name(),
            child: None,
            dir,
        };
        for _ in 0..PORT_ATTEMPTS {
            pg.port = free_port();
            if pg.launch() {
                return pg;
            }
        }
        panic!(
            "PostgreSQL found no free port in {PORT_ATTEMPTS} attempts:\n{}",
            pg.log()
        );
    }

    /// Starts the server again on the same data directory and port after [`Postgres::stop`]
    /// or [`Postgres::kill`] (recovering from the crash after a kill); returns once it accepts
    /// connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        assert!(
            self.launch(),
            "PostgreSQL cannot listen on its port {} again: something else took it:\n{}",
            self.port,
            self.log()
        );
    }

    /// Stops the server the way an operator would (fast shutdown: SIGINT; open connections are
    /// closed, transactions rolled back) and waits until it and all its processes are gone.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("PostgreSQL is not running");
        signal(child.id(), libc::SIGINT);
        if wait_for(&mut child, STOP_TIMEOUT).is_none() {
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
            self.kill_strays();
            panic!(
                "PostgreSQL did not stop within {STOP_TIMEOUT:?}; killed it:\n{}",
                self.log()
            );
        }
    }

    /// Kills the server outright, as a crash would: SIGKILL to it and every process it started,
    /// and waits until all are gone, so that [`Postgres::start_again`] finds the data directory
    /// free (it then runs crash recovery).
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("PostgreSQL is not running");
        signal(child.id(), libc::SIGKILL);
        let _ = child.wait();
        self.kill_strays();
    }

    /// Creates database `name` (letters, digits and `_`) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database names in tests are letters, digits and `_`: {name:?}"
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// The URL of database `db`: `postgres://gatehouse@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` (one or more statements) on database `db` with `psql` over TCP and returns
    /// its stdout: unaligned and tuples only (`-At`), one line per row, columns separated by
    /// `|`. Panics with psql's stderr when a statement fails (it stops at the first).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_output(db, sql);
        assert!(
            out.status.success(),
            "psql on {db} failed ({}):\n{sql}\n{}",
            out.code(),
            out.err()
        );
        out.out()
    }

    /// The server's port on 127.0.0.1 (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server (the postmaster).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("PostgreSQL is not running").id()
    }

    /// Every live process of this server (the postmaster and its backends and helpers, also
    /// ones left behind by a crash), found by the data directory in the postmaster's command
    /// line and the cluster name in the others' titles.
    pub fn processes(&self) -> Vec<u32> {
        let data = self.dir.path().join("data");
        let data = data.to_string_lossy();
        let title = format!("postgres: {}: ", self.cluster);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.contains(&title) || cmdline.contains(data.as_ref())) && alive(*pid)
            })
            .collect()
    }

    /// The server's log so far (all runs, appended).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Runs `psql` on `db`; its output, whatever the outcome.
    fn psql_output(&self, db: &str, sql: &str) -> Output {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
        ])
        .arg(self.url(db))
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGOPTIONS")
        .env_remove("PGSERVICE");
        run(cmd, sql.as_bytes(), Duration::from_secs(60))
    }

    /// Starts `postgres` on the data directory and waits until it accepts connections. False
    /// when it exited because its port was taken; panics with its log on any other failure.
    fn launch(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("PostgreSQL log file");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-c")
            .arg(format!("port={}", self.port))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().join("sockets").display()
            ))
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .args(["-c", "logging_collector=off"])
            .arg("-c")
            .arg(format!("cluster_name={}", self.cluster))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        as_account(&mut cmd, self.account);
        self.child = Some(spawn_tied(cmd).expect("start postgres"));
        if let Some(status) = self.wait_ready() {
            let this_run = self.log().get(log_start..).unwrap_or_default().to_owned();
            if this_run.contains("Address already in use") {
                return false;
            }
            panic!("postgres exited with {status} before accepting connections:\n{this_run}");
        }
        true
    }

    /// Polls the server's own unix socket until it accepts connections, then checks over TCP
    /// that the port answers for this server. The exit status if it ended first.
    fn wait_ready(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("launched");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-t", "5", "-U", PG_USER, "-d", "postgres", "-h"])
                .arg(self.dir.path().join("sockets"))
                .arg("-p")
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .status()
                .expect("run pg_isready");
            if ready.success() {
                break;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "PostgreSQL did not accept connections within {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.psql_output("postgres", "SHOW cluster_name");
        assert!(
            out.status.success() && out.out().trim() == self.cluster,
            "PostgreSQL is up but 127.0.0.1:{} does not answer for it ({}): {}{}\n{}",
            self.port,
            out.code(),
            out.out(),
            out.err(),
            self.log()
        );
        None
    }

    /// SIGKILLs what is left of this server after its postmaster died, until nothing is.
    fn kill_strays(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let strays = self.processes();
            if strays.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL processes {strays:?} survive SIGKILL"
            );
            for pid in strays {
                signal(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the data directory goes right after, so nothing is worth a
            // checkpoint; the postmaster still waits for its processes before exiting.
            signal(child.id(), libc::SIGQUIT);
            if wait_for(&mut child, STOP_TIMEOUT).is_none() {
                signal(child.id(), libc::SIGKILL);
                let _ = child.wait();
            }
        }
        // What a kill or a cut-short stop left behind goes too; never panic here.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let strays = self.processes();
            if strays.is_empty() {
                break;
            }
            for pid in strays {
                signal(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The directory with `initdb`, `postgres`, `pg_isready` and `psql`: `$GATEHOUSE_PG_BIN`, else
/// the newest `/usr/lib/postgresql/VERSION/bin`. Panics when there is none.
fn bin_dir() -> PathBuf {
    let dir = match std::env::var_os("GATEHOUSE_PG_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => newest_installed().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: the end-to-end \
                 tests start their own PostgreSQL server and need the Debian `postgresql` \
                 package (`apt-get install postgresql`; .ci/run installs it), or \
                 GATEHOUSE_PG_BIN set to a directory with initdb, postgres, pg_isready and psql"
            )
        }),
    };
    for tool in ["initdb", "postgres", "pg_isready", "psql"] {
        assert!(
            dir.join(tool).is_file(),
            "{} is missing: the end-to-end tests need the PostgreSQL server binaries (the \
             Debian `postgresql` package, or GATEHOUSE_PG_BIN set to their directory)",
            dir.join(tool).display()
        );
    }
    dir
}

/// The highest version under `/usr/lib/postgresql` that has `initdb`.
fn newest_installed() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// The account to run the server as: none (the current user) unless we are root, then
/// `postgres`, or `nobody` where the Debian package has not created `postgres`.
fn server_account() -> Option<Account> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let account = ["postgres", "nobody"].into_iter().find_map(|name| {
        Some(Account {
            name,
            uid: id_of(name, "-u")?,
            gid: id_of(name, "-g")?,
        })
    });
    assert!(
        account.is_some(),
        "running as root, and neither `postgres` nor `nobody` exists to run PostgreSQL as \
         (it refuses to run as root)"
    );
    account
}

/// `id FLAG NAME` as a number.
fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(name).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// Makes `cmd` run as `account` (all supplementary groups dropped), if any.
fn as_account(cmd: &mut Command, account: Option<Account>) {
    if let Some(account) = account {
        cmd.uid(account.uid).gid(account.gid);
    }
}

/// A cluster name no other server has, in this process or another.
fn cluster_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "gatehouse-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Spawns `cmd` so that it is killed when the test process dies, even killed outright with no
/// `Drop` run. The parent-death signal follows the thread that forked, so every server is
/// forked by one thread that lives as long as the process, not by a test's own thread.
fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe calls (prctl, getppid, _exit) and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The test process died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("postgres-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        tx
    });
    let (reply, answer) = mpsc::channel();
    spawner.send((cmd, reply)).expect("spawner thread alive");
    answer.recv().expect("spawner thread answers")
}

/// Sends `sig` to `pid`; a process already gone is no error.
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold anything.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z")
}

/// Waits up to `timeout` for `child` to exit.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
