//! A real OpenLDAP `slapd` for the end-to-end tests: its own `slapd.conf`, an MDB database and
//! the openssh-lpk schema (`sshPublicKey`) in a temporary directory, listening on a free
//! loopback port, started and stopped by the test. The system's own slapd is never used.
//!
//! The tree: `dc=example,dc=org` with `ou=people` (users: inetOrgPerson, posixAccount,
//! ldapPublicKey), `ou=groups` (groupOfNames with `member` DNs) and `ou=services` (the account
//! Gatehouse binds as, with read access like everyone bound).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Output, free_port, run};

/// The tree's base DN.
pub const BASE: &str = "dc=example,dc=org";
/// The administrator, who changes the directory in tests.
pub const ADMIN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PASSWORD: &str = "admin-secret";
/// The account Gatehouse binds as.
pub const SERVICE: &str = "cn=gatehouse,ou=services,dc=example,dc=org";
/// Its password.
pub const SERVICE_PASSWORD: &str = "gatehouse-secret";

/// The openssh-lpk schema: one attribute for OpenSSH public keys, and the auxiliary class
/// that carries it.
const OPENSSH_LPK: &str = "\
attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
    DESC 'OpenSSH public key'
    EQUALITY octetStringMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
    DESC 'OpenSSH public keys'
    MAY ( sshPublicKey $ uid ) )
";

/// How long slapd may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A slapd of the test's own.
pub struct Slapd {
    port: u16,
    /// The `ldaps://` port, when the server has a certificate.
    tls_port: Option<u16>,
    child: Option<Child>,
    /// Last, so the directory goes only after the server has stopped.
    dir: tempfile::TempDir,
}

impl Slapd {
    /// Writes the configuration and the base tree (offline, with `slapadd`), then starts the
    /// server; returns once it answers. `extra_ldif` is loaded with the base tree (for a large
    /// directory, far faster than `ldapadd`). Panics (fails the test) when slapd is missing or
    /// does not start, with its output.
    pub fn start(extra_ldif: &str) -> Slapd {
        Slapd::start_with(extra_ldif, None)
    }

    /// Like [`Slapd::start`], with TLS: `server.pem` and `server.key` from `certs` (see
    /// `common::certs`), StartTLS on the `ldap://` port and an `ldaps://` port as well.
    pub fn start_tls(extra_ldif: &str, certs: &Path) -> Slapd {
        Slapd::start_with(extra_ldif, Some(certs))
    }

    fn start_with(extra_ldif: &str, certs: Option<&Path>) -> Slapd {
        let slapd = Path::new("/usr/sbin/slapd");
        assert!(
            slapd.exists(),
            "/usr/sbin/slapd is missing: install the Debian packages slapd and ldap-utils (.ci/run does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-ldap-")
            .tempdir()
            .expect("temporary directory for slapd");
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("openssh-lpk.schema"), OPENSSH_LPK).unwrap();
        let mut conf = config(dir.path());
        if let Some(certs) = certs {
            // Global directives, so before the database section.
            let tls = format!(
                "TLSCertificateFile {0}/server.pem\nTLSCertificateKeyFile {0}/server.key\ndatabase mdb\n",
                certs.display()
            );
            conf = conf.replacen("database mdb\n", &tls, 1);
        }
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let base = format!("{}{extra_ldif}", base_tree());
        std::fs::write(dir.path().join("base.ldif"), base).unwrap();
        let mut slapadd = Command::new("/usr/sbin/slapadd");
        slapadd
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-q")
            .arg("-l")
            .arg(dir.path().join("base.ldif"));
        let out = run(slapadd, b"", Duration::from_secs(300));
        assert!(
            out.status.success(),
            "slapadd failed ({}):\n{}{}",
            out.code(),
            out.out(),
            out.err()
        );
        let mut server = Slapd {
            port: 0,
            tls_port: None,
            child: None,
            dir,
        };
        for _ in 0..5 {
            server.port = free_port();
            server.tls_port = certs.map(|_| free_port());
            if server.launch() {
                return server;
            }
        }
        panic!("slapd found no free port in 5 attempts:\n{}", server.log());
    }

    /// Starts the server on its port; whether it came up.
    fn launch(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("slapd.log")).unwrap();
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(match self.tls_port {
                Some(tls) => format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{tls}/", self.port),
                None => format!("ldap://127.0.0.1:{}/", self.port),
            })
            // Debug level 0 keeps slapd in the foreground, as the test's child.
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting slapd");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                eprintln!("slapd exited with {status}:\n{}", self.log());
                return false;
            }
            let probe = self.tool("ldapsearch", &["-s", "base", "-b", BASE, "dn"], "");
            if probe.status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "slapd did not answer within {READY_TIMEOUT:?}:\n{}",
            self.log()
        );
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`, for a server started with [`Slapd::start_tls`].
    pub fn tls_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.tls_port.expect("started with TLS")
        )
    }

    /// Stops the server's clock (SIGSTOP): it accepts connections and answers nothing, as a
    /// hung directory does. [`Slapd::thaw`] lets it go on.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("slapd is running");
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
    }

    /// A file holding the service account's password, for `password_file`.
    pub fn password_file(&self) -> PathBuf {
        let path = self.dir.path().join("gatehouse.pw");
        std::fs::write(&path, format!("{SERVICE_PASSWORD}\n")).unwrap();
        path
    }

    /// Changes the directory as its administrator (`ldapmodify` with `ldif`); panics on failure.
    pub fn modify(&self, ldif: &str) {
        let out = self.tool("ldapmodify", &[], ldif);
        assert!(
            out.status.success(),
            "ldapmodify failed ({}):\n{}{}\n{ldif}",
            out.code(),
            out.out(),
            out.err()
        );
    }

    /// Adds entries as the administrator (`ldapadd`); panics on failure.
    pub fn add(&self, ldif: &str) {
        let out = self.tool("ldapadd", &[], ldif);
        assert!(
            out.status.success(),
            "ldapadd failed ({}):\n{}{}",
            out.code(),
            out.out(),
            out.err()
        );
    }

    fn tool(&self, tool: &str, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(tool);
        cmd.args(["-x", "-H", &self.url(), "-D", ADMIN, "-w", ADMIN_PASSWORD])
            .args(args)
            .env("LDAPNOINIT", "1");
        run(cmd, stdin.as_bytes(), Duration::from_secs(60))
    }

    /// Stops the server (SIGTERM) and waits for it; [`Slapd::start_again`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data and port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "slapd is already running");
        assert!(self.launch(), "slapd did not start again:\n{}", self.log());
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include {d}/openssh-lpk.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
sizelimit unlimited
database mdb
maxsize 1073741824
suffix \"{BASE}\"
rootdn \"{ADMIN}\"
rootpw {ADMIN_PASSWORD}
directory {d}/data
index objectClass eq
index uid eq
index member eq
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
"
    )
}

fn base_tree() -> String {
    format!(
        "dn: {BASE}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{BASE}
objectClass: organizationalUnit
ou: services

dn: {SERVICE}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: gatehouse
userPassword: {SERVICE_PASSWORD}

"
    )
}

/// LDIF for a person with these keys (OpenSSH lines).
pub fn person(uid: &str, number: u32, keys: &[&str]) -> String {
    let mut ldif = format!(
        "dn: uid={uid},ou=people,{BASE}
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: ldapPublicKey
uid: {uid}
cn: {uid}
sn: {uid}
uidNumber: {number}
gidNumber: {number}
homeDirectory: /home/{uid}
loginShell: /bin/bash
"
    );
    for key in keys {
        ldif.push_str(&format!("sshPublicKey: {key}\n"));
    }
    ldif.push('\n');
    ldif
}

/// LDIF for a group (groupOfNames) with these members (uids); groupOfNames needs one member
/// at least, so an empty group lists the service account.
pub fn group(cn: &str, members: &[&str]) -> String {
    let mut ldif = format!("dn: cn={cn},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {cn}\n");
    if members.is_empty() {
        ldif.push_str(&format!("member: {SERVICE}\n"));
    }
    for uid in members {
        ldif.push_str(&format!("member: uid={uid},ou=people,{BASE}\n"));
    }
    ldif.push('\n');
    ldif
}

/// The DN of person `uid`.
pub fn person_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{BASE}")
}
