//! The serving TLS flags of Kubernetes API servers, `--tls-min-version` and
//! `--tls-cipher-suites`, with Go's names, mapped onto what rustls implements.
//!
//! rustls speaks TLS 1.2 and 1.3 only, and only AEAD suites with ephemeral key exchange. Go
//! names outside that set are still accepted, as prometheus-adapter accepts them, but each
//! one is reported as not offered; a list that leaves nothing to offer is an error. As in Go,
//! the list chooses the TLS 1.2 suites; unlike Go, TLS 1.3 suites named in it are honoured
//! too (Go ignores them), and when it names none, all three are offered.
//!
//! ```
//! use promhpa_apiserver::server::{TlsOptions, TlsVersion};
//! let options = TlsOptions {
//!     min_version: Some("VersionTLS12".parse::<TlsVersion>().unwrap()),
//!     cipher_suites: vec![
//!         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
//!         "TLS_RSA_WITH_AES_128_CBC_SHA".into(),
//!     ],
//!     disable_http2: false,
//! };
//! let resolved = options.resolve().unwrap();
//! // TLS 1.3 keeps its suites since none is named.
//! assert_eq!(
//!     resolved.cipher_suite_names(),
//!     [
//!         "TLS_AES_256_GCM_SHA384",
//!         "TLS_AES_128_GCM_SHA256",
//!         "TLS_CHACHA20_POLY1305_SHA256",
//!         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
//!     ]
//! );
//! assert!(resolved.warnings[0].contains("TLS_RSA_WITH_AES_128_CBC_SHA is not offered"));
//! ```

use std::str::FromStr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::error::ServerError;

/// The crypto provider every TLS configuration of the server is built from (ring).
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS protocol version by its Go name (`VersionTLS12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Every accepted name, lowest version first.
    pub const GO_NAMES: [&'static str; 4] = [
        "VersionTLS10",
        "VersionTLS11",
        "VersionTLS12",
        "VersionTLS13",
    ];

    pub fn go_name(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "VersionTLS10",
            TlsVersion::Tls11 => "VersionTLS11",
            TlsVersion::Tls12 => "VersionTLS12",
            TlsVersion::Tls13 => "VersionTLS13",
        }
    }
}

impl FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "VersionTLS10" => Ok(TlsVersion::Tls10),
            "VersionTLS11" => Ok(TlsVersion::Tls11),
            "VersionTLS12" => Ok(TlsVersion::Tls12),
            "VersionTLS13" => Ok(TlsVersion::Tls13),
            other => Err(format!(
                "unknown tls version \"{other}\": expected one of {}",
                TlsVersion::GO_NAMES.join(", ")
            )),
        }
    }
}

/// A cipher suite Go's crypto/tls knows, with its IANA code and, when rustls does not
/// implement it, why.
struct GoSuite {
    name: &'static str,
    id: u16,
    missing: Option<&'static str>,
}

const RSA_KX_CBC: &str = "RSA key exchange and CBC mode are not implemented";
const RSA_KX: &str = "RSA key exchange is not implemented";
const CBC: &str = "CBC mode is not implemented";
const DES3: &str = "3DES is not implemented";
const RC4: &str = "RC4 is not implemented";

const fn suite(name: &'static str, id: u16, missing: Option<&'static str>) -> GoSuite {
    GoSuite { name, id, missing }
}

/// Every name `--tls-cipher-suites` accepts in Kubernetes (Go's secure and insecure suites
/// and the two legacy ChaCha20 names), TLS 1.3 suites first.
const GO_SUITES: &[GoSuite] = &[
    suite("TLS_AES_128_GCM_SHA256", 0x1301, None),
    suite("TLS_AES_256_GCM_SHA384", 0x1302, None),
    suite("TLS_CHACHA20_POLY1305_SHA256", 0x1303, None),
    suite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xc02b, None),
    suite("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xc02c, None),
    suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f, None),
    suite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030, None),
    suite(
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9,
        None,
    ),
    suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca8, None),
    suite("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", 0xcca9, None),
    suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", 0xcca8, None),
    suite("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xc009, Some(CBC)),
    suite("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xc00a, Some(CBC)),
    suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013, Some(CBC)),
    suite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014, Some(CBC)),
    suite("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xc023, Some(CBC)),
    suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xc027, Some(CBC)),
    suite("TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009c, Some(RSA_KX)),
    suite("TLS_RSA_WITH_AES_256_GCM_SHA384", 0x009d, Some(RSA_KX)),
    suite("TLS_RSA_WITH_AES_128_CBC_SHA", 0x002f, Some(RSA_KX_CBC)),
    suite("TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035, Some(RSA_KX_CBC)),
    suite("TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003c, Some(RSA_KX_CBC)),
    suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x000a, Some(DES3)),
    suite("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", 0xc012, Some(DES3)),
    suite("TLS_RSA_WITH_RC4_128_SHA", 0x0005, Some(RC4)),
    suite("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", 0xc007, Some(RC4)),
    suite("TLS_ECDHE_RSA_WITH_RC4_128_SHA", 0xc011, Some(RC4)),
];

fn go_suite(name: &str) -> Option<&'static GoSuite> {
    GO_SUITES.iter().find(|s| s.name == name.trim())
}

/// The Go names of the cipher suites promhpa offers.
pub fn offered_cipher_suite_names() -> Vec<&'static str> {
    GO_SUITES
        .iter()
        .filter(|s| s.missing.is_none() && !s.name.ends_with("CHACHA20_POLY1305"))
        .map(|s| s.name)
        .collect()
}

/// The Go names that are accepted but not offered, because rustls does not implement them.
pub fn unoffered_cipher_suite_names() -> Vec<&'static str> {
    GO_SUITES
        .iter()
        .filter(|s| s.missing.is_some())
        .map(|s| s.name)
        .collect()
}

/// Checks one `--tls-cipher-suites` name; an unknown one is an error listing the known ones.
pub fn check_cipher_suite_name(name: &str) -> Result<(), String> {
    match go_suite(name) {
        Some(_) => Ok(()),
        None => Err(format!(
            "cipher suite \"{}\" not supported or doesn't exist; offered: {}; accepted but not offered: {}",
            name.trim(),
            offered_cipher_suite_names().join(", "),
            unoffered_cipher_suite_names().join(", ")
        )),
    }
}

/// The serving TLS settings from `--tls-min-version` and `--tls-cipher-suites`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The lowest version offered; TLS 1.2 when unset.
    pub min_version: Option<TlsVersion>,
    /// Go cipher suite names; empty means rustls' defaults.
    pub cipher_suites: Vec<String>,
    /// `--disable-http2`: ALPN offers HTTP/1.1 only.
    pub disable_http2: bool,
}

/// What [`TlsOptions`] come to with rustls: the versions and suites offered, and what was
/// asked for but cannot be offered.
#[derive(Debug, Clone)]
pub struct ResolvedTls {
    pub versions: Vec<&'static SupportedProtocolVersion>,
    pub cipher_suites: Vec<SupportedCipherSuite>,
    /// One line for each setting that is not honoured as given.
    pub warnings: Vec<String>,
    /// HTTP/2 is offered (ALPN `h2`).
    pub http2: bool,
}

impl ResolvedTls {
    /// The offered suites by their Go names, in the order offered.
    pub fn cipher_suite_names(&self) -> Vec<&'static str> {
        self.cipher_suites
            .iter()
            .filter_map(|s| {
                let id = u16::from(s.suite());
                GO_SUITES.iter().find(|g| g.id == id).map(|g| g.name)
            })
            .collect()
    }
}

impl TlsOptions {
    /// The protocol versions and cipher suites to serve with, or an error when nothing the
    /// options ask for can be offered.
    pub fn resolve(&self) -> Result<ResolvedTls, ServerError> {
        let mut warnings = Vec::new();
        let min = self.min_version.unwrap_or(TlsVersion::Tls12);
        if min < TlsVersion::Tls12 {
            warnings.push(format!(
                "--tls-min-version={}: TLS 1.0 and 1.1 are not implemented; TLS 1.2 is the lowest version offered",
                min.go_name()
            ));
        }
        let available = provider().cipher_suites.clone();
        let mut suites: Vec<SupportedCipherSuite> = if self.cipher_suites.is_empty() {
            available.clone()
        } else {
            let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
            let mut unoffered = Vec::new();
            for name in self.cipher_suites.iter().filter(|n| !n.trim().is_empty()) {
                let Some(go) = go_suite(name) else {
                    return Err(ServerError::Tls(
                        check_cipher_suite_name(name).err().unwrap_or_default(),
                    ));
                };
                let found = available.iter().find(|s| u16::from(s.suite()) == go.id);
                match (found, go.missing) {
                    (Some(s), _) => {
                        if !chosen.iter().any(|c| c.suite() == s.suite()) {
                            chosen.push(*s);
                        }
                    }
                    (None, reason) => {
                        unoffered.push(go.name);
                        warnings.push(format!(
                            "--tls-cipher-suites: {} is not offered ({})",
                            go.name,
                            reason.unwrap_or("not implemented")
                        ));
                    }
                }
            }
            if chosen.is_empty() {
                return Err(ServerError::Tls(format!(
                    "none of the --tls-cipher-suites can be offered ({} not implemented); choose from: {}",
                    unoffered.join(", "),
                    offered_cipher_suite_names().join(", ")
                )));
            }
            // Go's list only chooses TLS 1.2 suites: TLS 1.3 keeps all of its own unless
            // some are named.
            if !chosen.iter().any(|s| s.tls13().is_some()) {
                let tls13 = available.iter().filter(|s| s.tls13().is_some()).copied();
                chosen = tls13.chain(chosen).collect();
            }
            chosen
        };
        let has12 = suites.iter().any(|s| s.tls13().is_none());
        let mut versions: Vec<&'static SupportedProtocolVersion> = vec![&rustls::version::TLS13];
        if min <= TlsVersion::Tls12 {
            if has12 {
                versions.push(&rustls::version::TLS12);
            } else {
                warnings.push(
                    "--tls-cipher-suites names no TLS 1.2 suite that can be offered: only TLS 1.3 clients can connect"
                        .to_string(),
                );
            }
        } else {
            suites.retain(|s| s.tls13().is_some());
        }
        Ok(ResolvedTls {
            versions,
            cipher_suites: suites,
            warnings,
            http2: !self.disable_http2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(r: &ResolvedTls) -> Vec<rustls::ProtocolVersion> {
        r.versions.iter().map(|v| v.version).collect()
    }

    #[test]
    fn go_version_names() {
        for (name, v) in TlsVersion::GO_NAMES.iter().zip([
            TlsVersion::Tls10,
            TlsVersion::Tls11,
            TlsVersion::Tls12,
            TlsVersion::Tls13,
        ]) {
            assert_eq!(name.parse::<TlsVersion>(), Ok(v));
            assert_eq!(v.go_name(), *name);
        }
        let err = "TLS1.3".parse::<TlsVersion>().unwrap_err();
        assert!(err.contains("unknown tls version \"TLS1.3\""), "{err}");
        assert!(err.contains("VersionTLS13"), "{err}");
        assert!("versiontls12".parse::<TlsVersion>().is_err());
    }

    #[test]
    fn offered_go_names_carry_the_iana_codes_rustls_uses() {
        // Every suite rustls implements has a Go name, and each Go name said to be offered
        // is one rustls implements under the same code.
        let available = provider().cipher_suites.clone();
        for s in &available {
            let id = u16::from(s.suite());
            let go = GO_SUITES.iter().find(|g| g.id == id);
            assert!(go.is_some(), "no Go name for {:?}", s.suite());
            assert_eq!(
                go.map(|g| g.name.replace("TLS13_", "TLS_")),
                Some(format!("{:?}", s.suite()).replace("TLS13_", "TLS_")),
            );
        }
        for g in GO_SUITES {
            let implemented = available.iter().any(|s| u16::from(s.suite()) == g.id);
            assert_eq!(implemented, g.missing.is_none(), "{}", g.name);
        }
        assert_eq!(offered_cipher_suite_names().len(), available.len());
        assert_eq!(GO_SUITES.len(), 27);
    }

    #[test]
    fn names_are_checked_and_legacy_chacha_names_accepted() {
        assert!(check_cipher_suite_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").is_ok());
        assert!(check_cipher_suite_name("TLS_RSA_WITH_3DES_EDE_CBC_SHA").is_ok());
        let err = check_cipher_suite_name("TLS_FAKE").unwrap_err();
        assert!(err.contains("\"TLS_FAKE\" not supported"), "{err}");
        assert!(err.contains("TLS_AES_128_GCM_SHA256"), "{err}");
        assert!(err.contains("TLS_RSA_WITH_AES_128_CBC_SHA"), "{err}");
        let options = TlsOptions {
            min_version: None,
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into()],
            disable_http2: false,
        };
        let r = options.resolve().unwrap();
        assert_eq!(
            r.cipher_suite_names().last().copied(),
            Some("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn defaults_offer_tls12_and_tls13_with_every_suite() {
        let r = TlsOptions::default().resolve().unwrap();
        assert_eq!(r.versions.len(), 2);
        assert_eq!(r.cipher_suites.len(), provider().cipher_suites.len());
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn old_versions_warn_and_tls13_drops_tls12_suites() {
        let r = TlsOptions {
            min_version: Some(TlsVersion::Tls10),
            cipher_suites: vec![],
            disable_http2: false,
        }
        .resolve()
        .unwrap();
        assert!(versions(&r).contains(&rustls::ProtocolVersion::TLSv1_2));
        assert!(
            r.warnings[0].contains("TLS 1.2 is the lowest"),
            "{:?}",
            r.warnings
        );
        let r = TlsOptions {
            min_version: Some(TlsVersion::Tls13),
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()],
            disable_http2: false,
        }
        .resolve()
        .unwrap();
        assert_eq!(versions(&r), vec![rustls::ProtocolVersion::TLSv1_3]);
        assert!(r.cipher_suites.iter().all(|s| s.tls13().is_some()));
        assert_eq!(r.cipher_suites.len(), 3);
    }

    #[test]
    fn unimplemented_suites_warn_and_nothing_offered_is_an_error() {
        let r = TlsOptions {
            min_version: None,
            disable_http2: false,
            cipher_suites: vec![
                "TLS_RSA_WITH_AES_128_CBC_SHA".into(),
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into(),
                "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA".into(),
                "TLS_AES_256_GCM_SHA384".into(),
            ],
        }
        .resolve()
        .unwrap();
        // A TLS 1.3 suite is named: TLS 1.3 offers that one only.
        assert_eq!(
            r.cipher_suite_names(),
            vec![
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_AES_256_GCM_SHA384"
            ]
        );
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(
            r.warnings[0].contains("RSA key exchange and CBC"),
            "{:?}",
            r.warnings
        );
        assert!(r.warnings[1].contains("3DES"), "{:?}", r.warnings);

        let err = TlsOptions {
            min_version: None,
            disable_http2: false,
            cipher_suites: vec![
                "TLS_RSA_WITH_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into(),
            ],
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("none of the --tls-cipher-suites can be offered"),
            "{err}"
        );
        assert!(
            err.contains("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "{err}"
        );

        let err = TlsOptions {
            min_version: None,
            cipher_suites: vec!["TLS_BOGUS".into()],
            disable_http2: false,
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"TLS_BOGUS\" not supported"), "{err}");
    }

    #[test]
    fn only_tls13_suites_leave_tls12_off() {
        let r = TlsOptions {
            min_version: Some(TlsVersion::Tls12),
            cipher_suites: vec!["TLS_AES_128_GCM_SHA256".into()],
            disable_http2: false,
        }
        .resolve()
        .unwrap();
        assert_eq!(versions(&r), vec![rustls::ProtocolVersion::TLSv1_3]);
        assert_eq!(r.cipher_suite_names(), vec!["TLS_AES_128_GCM_SHA256"]);
        assert!(
            r.warnings[0].contains("only TLS 1.3 clients"),
            "{:?}",
            r.warnings
        );
    }
}
