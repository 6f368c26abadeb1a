//! Which servers a download trusts, the same for both clients and so for every
//! strategy: the roots are loaded once here and handed to ureq and reqwest
//! alike (each left to itself, ureq would use its bundled webpki roots and
//! reqwest the platform verifier, and `SSL_CERT_FILE` would work for one only).

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

/// Where trusted roots come from. With neither a file nor a folder, the
/// system's store (what `rustls-native-certs` finds: the distribution's
/// bundle, as curl and wget use); with either, only those, as curl's
/// `--cacert` and OpenSSL's `SSL_CERT_FILE` replace the default bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// PEM certificates (`--cacert`, or `SSL_CERT_FILE`).
    pub ca_file: Option<PathBuf>,
    /// A folder of PEM certificates (`--capath`, or `SSL_CERT_DIR`).
    pub ca_dir: Option<PathBuf>,
    /// `-k`: no certificate is checked at all (the connection is still encrypted).
    pub insecure: bool,
}

/// Roots that could not be loaded, naming where they were looked for.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read certificates from {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("no certificates in {path}")]
    Empty { path: String },
}

impl Trust {
    /// The root certificates to trust.
    pub fn roots(&self) -> Result<Vec<CertificateDer<'static>>, TrustError> {
        if self.ca_file.is_none() && self.ca_dir.is_none() {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "while loading the system's certificates");
            }
            if found.certs.is_empty() {
                tracing::warn!(
                    "no trusted certificates in the system store: https will fail; give --cacert FILE"
                );
            }
            return Ok(found.certs);
        }
        let paths = [&self.ca_file, &self.ca_dir]
            .into_iter()
            .flatten()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ");
        for path in [&self.ca_file, &self.ca_dir].into_iter().flatten() {
            if let Err(error) = path.metadata() {
                return Err(TrustError::Unreadable {
                    path: path.display().to_string(),
                    message: error.to_string(),
                });
            }
        }
        let found = rustls_native_certs::load_certs_from_paths(
            self.ca_file.as_deref(),
            self.ca_dir.as_deref(),
        );
        if let Some(error) = found.errors.first() {
            return Err(TrustError::Unreadable {
                path: paths,
                message: error.to_string(),
            });
        }
        match found.certs.is_empty() {
            true => Err(TrustError::Empty { path: paths }),
            false => Ok(found.certs),
        }
    }

    /// The trust the environment asks for, as curl and OpenSSL read it:
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`, when no flag gave a file or folder.
    pub fn with_environment(mut self) -> Trust {
        if self.ca_file.is_none() && self.ca_dir.is_none() {
            let variable = |name: &str| {
                std::env::var_os(name)
                    .filter(|value| !value.is_empty())
                    .map(PathBuf::from)
            };
            self.ca_file = variable("SSL_CERT_FILE");
            self.ca_dir = variable("SSL_CERT_DIR");
        }
        self
    }
}
