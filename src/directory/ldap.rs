//! Reading the directory over LDAP: connect (TLS, or StartTLS), bind, and run the paged
//! searches one sync needs.
//!
//! A read either returns every entry or fails: any error, a result code other than success,
//! a referral the server would have us follow, or the sync timeout makes the whole read fail,
//! so that a half-read directory is never mistaken for a directory with fewer people in it.
//! The work runs in its own task, so that even a panic inside the LDAP client on a malformed
//! answer becomes an error of this read, not of the bastion.

use std::sync::Arc;

use ldap3::adapters::PagedResults;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::snapshot::{RawDirectory, RawEntry};
use crate::config::directory::{DirectoryConfig, Membership};

/// Why a read of the directory failed; the last good state stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bind password file cannot be read.
    #[error("password file {path}: {source}")]
    Password {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error("ca_file {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The connection, the bind or a search failed.
    #[error("{step}: {source}")]
    Ldap {
        /// What was being done.
        step: &'static str,
        /// The client's error (with the server's result code and text).
        source: Box<ldap3::LdapError>,
    },
    /// A search returned something other than entries (a referral), which is not followed.
    #[error("{0}")]
    Incomplete(String),
    /// The whole read took longer than `[directory] timeout`.
    #[error("no complete answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The read stopped unexpectedly (the client failed on a malformed answer).
    #[error("the read stopped: {0}")]
    Aborted(String),
}

/// Reads every user, the disabled ones, and the groups, within the configured timeout.
pub async fn read(config: &DirectoryConfig) -> Result<RawDirectory, ReadError> {
    let config = config.clone();
    let timeout = config.timeout;
    let mut task = tokio::spawn(async move { read_all(&config).await });
    match tokio::time::timeout(timeout, &mut task).await {
        Err(_) => {
            // The read and its connection go, rather than linger against a hung server.
            task.abort();
            Err(ReadError::Timeout(timeout))
        }
        Ok(Err(join)) => Err(ReadError::Aborted(join.to_string())),
        Ok(Ok(result)) => result,
    }
}

async fn read_all(config: &DirectoryConfig) -> Result<RawDirectory, ReadError> {
    let settings = settings(config)?;
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
        .await
        .map_err(|source| ReadError::Ldap {
            step: "connecting",
            source: Box::new(source),
        })?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "directory connection ended");
        }
    });
    let result = async {
        if let (Some(dn), Some(file)) = (&config.bind_dn, &config.password_file) {
            let password = password(file)?;
            ldap.simple_bind(dn, &password)
                .await
                .and_then(|r| r.success())
                .map_err(|source| ReadError::Ldap {
                    step: "binding",
                    source: Box::new(source),
                })?;
        }
        let mut attrs = vec![config.name_attr.clone(), config.key_attr.clone()];
        if let Membership::UserAttribute(attr) = &config.membership {
            attrs.push(attr.clone());
        }
        // Disabled accounts are left out by the user search itself: an account whose
        // disabled marker cannot be read (access rules, a missing attribute) is then left
        // out too, where a separate search for disabled accounts would have let it in.
        let users_filter = match &config.disabled_filter {
            Some(disabled) => format!("(&{}(!{disabled}))", config.user_filter),
            None => config.user_filter.clone(),
        };
        let users = search(&mut ldap, config, &config.base_dn, &users_filter, attrs).await?;
        // Only to report who is disabled.
        let disabled = match &config.disabled_filter {
            Some(disabled) => {
                let filter = format!("(&{}{disabled})", config.user_filter);
                let attrs = vec![config.name_attr.clone()];
                search(&mut ldap, config, &config.base_dn, &filter, attrs).await?
            }
            None => Vec::new(),
        };
        let groups = match &config.membership {
            Membership::GroupEntries {
                base_dn,
                filter,
                member_attr,
            } => {
                let attrs = vec![member_attr.clone()];
                search(&mut ldap, config, base_dn, filter, attrs).await?
            }
            Membership::UserAttribute(_) => Vec::new(),
        };
        Ok(RawDirectory {
            users,
            disabled,
            groups,
        })
    }
    .await;
    let _ = ldap.unbind().await;
    driver.abort();
    result
}

/// One paged subtree search, all of it or an error.
async fn search(
    ldap: &mut ldap3::Ldap,
    config: &DirectoryConfig,
    base: &str,
    filter: &str,
    attrs: Vec<String>,
) -> Result<Vec<RawEntry>, ReadError> {
    let failed = |source| ReadError::Ldap {
        step: "searching",
        source: Box::new(source),
    };
    let mut stream = ldap
        .streaming_search_with(
            PagedResults::new(config.page_size),
            base,
            Scope::Subtree,
            filter,
            attrs,
        )
        .await
        .map_err(failed)?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await.map_err(failed)? {
        if entry.is_ref() {
            return Err(ReadError::Incomplete(format!(
                "searching {base}: the server returned a referral, which is not followed; \
                 point the URL at a server that holds the whole base DN"
            )));
        }
        if entry.is_intermediate() {
            continue;
        }
        let entry = SearchEntry::construct(entry);
        // A server that hands out a long attribute in ranges (Active Directory does, for
        // groups over 1,500 members) returned only part of it.
        if let Some(ranged) = entry.attrs.keys().find(|a| a.contains(";range=")) {
            return Err(ReadError::Incomplete(format!(
                "{}: the server returned {ranged}, a part of a long attribute; Gatehouse does \
                 not read ranged values, so the group is not read whole (use member_of_attr, \
                 or smaller groups)",
                entry.dn
            )));
        }
        entries.push(RawEntry {
            dn: entry.dn,
            attrs: entry
                .attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        });
    }
    stream.finish().await.success().map_err(failed)?;
    Ok(entries)
}

/// The connection settings: the sync timeout for the connection, TLS roots from `ca_file` (or
/// the system's), and StartTLS when asked.
fn settings(config: &DirectoryConfig) -> Result<LdapConnSettings, ReadError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(config.timeout)
        .set_starttls(config.starttls);
    if let Some(path) = &config.ca_file {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|e| ReadError::Ca {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let mut roots = rustls::RootCertStore::empty();
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ReadError::Ca {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| ReadError::Ca {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(ReadError::Ca {
                path: shown,
                message: "no PEM certificate in it".into(),
            });
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ReadError::Ca {
            path: shown,
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        settings = settings.set_config(Arc::new(tls));
    }
    Ok(settings)
}

/// The bind password: the file's first line, without its line ending.
fn password(path: &std::path::Path) -> Result<String, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Password {
        path: path.display().to_string(),
        source,
    })?;
    let password = text.lines().next().unwrap_or("");
    if password.is_empty() {
        // An empty password is an unauthenticated bind (RFC 4513), which would read the
        // directory as anyone may: refused.
        return Err(ReadError::Password {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is empty"),
        });
    }
    Ok(password.to_owned())
}
