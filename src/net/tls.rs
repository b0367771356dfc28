//! Mutual TLS between members on the internal gRPC port (Raft, the control plane, ids, a
//! spear's clients), as etcd and CockroachDB do it: one cluster CA; every node presents a
//! certificate it signed and accepts only peers that do, so a process without one cannot
//! join, vote, renew a lease or take ids. `gru certs` makes the CA and the certificates.
//!
//! Files, in `[cluster_tls] dir`: `ca.pem` (the CA certificates peers are checked against; a
//! rotation lists the old and the new one), `ca.key` (only `gru certs` needs it: keep it off
//! the nodes), `node-<id>.pem` and `node-<id>.key` for each node, and `client.pem` /
//! `client.key` for tools that call the internal port (the benchmark, the test harness).

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::{ClusterTlsSection, NodeId};

/// The name every node certificate carries and every client checks: membership, not a host
/// name, is what a peer proves.
pub const SERVER_NAME: &str = "gru-cluster";
/// The CA's common name.
const CA_NAME: &str = "gru cluster CA";

/// Why the certificates could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable.
    #[error(
        "cannot read {path}: {reason}. The internal gRPC port speaks mutual TLS \
         ([cluster_tls]); make the cluster's certificates with `{hint}` (docs/security.md, \
         \"Cluster TLS\"), or set [cluster_tls] enabled = false where only the cluster reaches \
         the port"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// The command that makes it.
        hint: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {reason}")]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Generating or signing failed.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

/// A node's or a tool's TLS settings for both ends of the internal port.
#[derive(Clone)]
pub struct ClusterTls {
    /// What the node's gRPC server uses.
    pub server: ServerTlsConfig,
    /// What its channels to peers use.
    pub client: ClientTlsConfig,
}

/// Installs ring as the process's rustls provider (once; later calls change nothing). Two
/// providers are linked in (reqwest brings aws-lc-rs), so rustls cannot pick one by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ClusterTls {
    /// Node `id`'s settings from `section`; `None` when cluster TLS is off.
    pub fn for_node(section: &ClusterTlsSection, id: NodeId) -> Result<Option<Self>, TlsError> {
        Self::load(section, &format!("node-{id}"))
    }

    /// A tool's settings (`client.pem`); `None` when cluster TLS is off.
    pub fn for_tool(section: &ClusterTlsSection) -> Result<Option<Self>, TlsError> {
        Self::load(section, "client")
    }

    fn load(section: &ClusterTlsSection, name: &str) -> Result<Option<Self>, TlsError> {
        if !section.enabled {
            return Ok(None);
        }
        install_crypto_provider();
        let hint = match &section.config_file {
            Some(path) => format!("gru certs --config {}", path.display()),
            None => "gru certs --config <the cluster config>".to_string(),
        };
        let read = |file: String| {
            let path = section.dir.join(file);
            std::fs::read(&path).map_err(|e| TlsError::Unreadable {
                path,
                reason: e.to_string(),
                hint: hint.clone(),
            })
        };
        let ca = Certificate::from_pem(read("ca.pem".into())?);
        let identity =
            Identity::from_pem(read(format!("{name}.pem"))?, read(format!("{name}.key"))?);
        Ok(Some(Self {
            server: ServerTlsConfig::new()
                .identity(identity.clone())
                .client_ca_root(ca.clone()),
            client: ClientTlsConfig::new()
                .ca_certificate(ca)
                .identity(identity)
                .domain_name(SERVER_NAME),
        }))
    }
}

/// What `gru certs` did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// Written now.
    Written(PathBuf),
    /// There already; kept.
    Kept(PathBuf),
}

/// Makes what is missing in `dir`: the CA (or reuses the one there), a certificate for each
/// of `nodes` and one for tools. With `renew`, node and tool certificates are made again even
/// when present (the CA is kept: rotating it is a separate, documented procedure).
pub fn make_certs(dir: &Path, nodes: &[NodeId], renew: bool) -> Result<Vec<Made>, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Unwritable {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut made = Vec::new();
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca_params = ca_params()?;
    let ca_keypair = if ca_key.exists() {
        let text = std::fs::read_to_string(&ca_key).map_err(|e| TlsError::Unreadable {
            path: ca_key.clone(),
            reason: e.to_string(),
            hint: "gru certs (a CA key in PEM)".into(),
        })?;
        made.push(Made::Kept(ca_key.clone()));
        made.push(Made::Kept(ca_pem.clone()));
        KeyPair::from_pem(&text).map_err(|e| TlsError::Generate(e.to_string()))?
    } else {
        let key = KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
        let cert = ca_params
            .self_signed(&key)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write(&ca_key, &key.serialize_pem(), true)?;
        write(&ca_pem, &cert.pem(), false)?;
        made.push(Made::Written(ca_key.clone()));
        made.push(Made::Written(ca_pem.clone()));
        key
    };
    let issuer = Issuer::new(ca_params, ca_keypair);
    let leaves = nodes
        .iter()
        .map(|id| {
            (
                format!("node-{id}"),
                vec![SERVER_NAME.to_string(), format!("node-{id}.{SERVER_NAME}")],
                true,
            )
        })
        .chain([("client".to_string(), vec!["gru-tool".to_string()], false)]);
    for (name, names, server) in leaves {
        let (pem, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        if !renew && pem.exists() && key.exists() {
            made.push(Made::Kept(pem));
            continue;
        }
        let keypair = KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
        let mut params =
            CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name.clone());
        params.distinguished_name = dn;
        params.extended_key_usages = if server {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        valid_for(&mut params, 5);
        let cert = params
            .signed_by(&keypair, &issuer)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write(&key, &keypair.serialize_pem(), true)?;
        write(&pem, &cert.pem(), false)?;
        made.push(Made::Written(pem));
    }
    Ok(made)
}

/// The CA's parameters; the same every time, so that a CA key read back signs certificates
/// that chain to the CA certificate written with it.
fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    valid_for(&mut params, 10);
    Ok(params)
}

/// Valid from the start of this year (by the wall clock) to the start of the year `years`
/// later.
fn valid_for(params: &mut CertificateParams, years: i32) {
    // Whole years since 1970 by the mean Gregorian year: exact enough for a validity start.
    let year = 1970 + i32::try_from(crate::clock::unix_ms() / 1000 / 31_556_952).unwrap_or(0);
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| TlsError::Unwritable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_are_made_once_and_a_kept_ca_still_signs_new_nodes() {
        let dir = tempfile::tempdir().expect("dir");
        let first = make_certs(dir.path(), &[1, 2], false).expect("made");
        assert!(first.contains(&Made::Written(dir.path().join("ca.pem"))));
        assert!(first.contains(&Made::Written(dir.path().join("node-2.pem"))));
        let ca = std::fs::read(dir.path().join("ca.pem")).expect("ca");
        let again = make_certs(dir.path(), &[1, 2, 3], false).expect("made");
        assert!(again.contains(&Made::Kept(dir.path().join("node-1.pem"))));
        assert!(again.contains(&Made::Written(dir.path().join("node-3.pem"))));
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).expect("ca"), ca);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("node-3.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys are readable by their owner only");
        let section = ClusterTlsSection {
            enabled: true,
            dir: dir.path().to_path_buf(),
            config_file: None,
        };
        assert!(ClusterTls::for_node(&section, 3).expect("loads").is_some());
        let missing = ClusterTls::for_node(&section, 9).err().expect("no node 9");
        assert!(
            missing.to_string().contains("gru certs --config"),
            "{missing}"
        );
    }
}
