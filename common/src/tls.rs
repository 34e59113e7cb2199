//! TLS 1.3 under every connection: each server's key and self-signed
//! certificate, the client and server configurations, and what a finished
//! TLS handshake tells the layers above (the session's exported keying
//! material, which token proofs are bound to, and the certificate's
//! fingerprint, which pinning compares).
//!
//! There is no certificate authority: a server is known by the SHA-256 of
//! its certificate (its fingerprint), as with ssh host keys or Syncthing
//! device IDs. The dialler accepts any certificate whose key signs the
//! handshake, then checks a pinned fingerprint if one is given; with a
//! shared token, [`crate::proof`] makes both ends prove they hold it over
//! this very session, which a man in the middle cannot. The crypto provider
//! is `ring`: it builds on Linux, macOS and Windows with only a C compiler
//! (aws-lc-rs needs cmake and nasm on Windows) and is fast where it counts
//! here (AES-GCM with the CPU's AES instructions).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use tokio::io::BufReader;
use tokio::net::TcpStream;

/// The label of the keying material token proofs are bound to (RFC 8446
/// section 7.5; RFC 5705 asks that labels begin with "EXPORTER").
const EXPORTER_LABEL: &[u8] = b"EXPORTER-lab3-token-proof";

/// The name the dialler asks for. Certificates are not checked against
/// names (they are pinned or proven instead); it is never sent (no SNI).
const SERVER_NAME: &str = "lab3";

/// The SHA-256 of a server's certificate (DER), which names the server's
/// key: what `openssl x509 -noout -fingerprint -sha256` prints, in another
/// spelling.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(cert: &CertificateDer<'_>) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    /// Takes what [`Fingerprint`]'s `Display` prints, and also the same hex
    /// without `sha256:`, in either case, with `:` or spaces between bytes
    /// (as openssl prints it).
    fn from_str(s: &str) -> Result<Fingerprint, String> {
        let t = s.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':' && *c != ' ').collect();
        match crate::proof::from_hex(&hex).map(<[u8; 32]>::try_from) {
            Some(Ok(bytes)) => Ok(Fingerprint(bytes)),
            _ => Err(format!(
                "{s:?} is not a certificate fingerprint (64 hex digits, as `sha256:…` that the server prints at start)"
            )),
        }
    }
}

/// A server's key and self-signed certificate, kept in its state directory.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.fingerprint) // never the key
    }
}

impl Identity {
    /// Loads the identity kept under `state_dir/tls`, making it on first use
    /// (the key readable by its owner only). A key without its certificate
    /// (a crash between the two writes) gets a new certificate.
    pub fn load_or_create(state_dir: &Path) -> anyhow::Result<Identity> {
        let dir = state_dir.join("tls");
        let (key_path, cert_path) = (dir.join("key.pem"), dir.join("cert.pem"));
        let key_pem = if key_path.exists() {
            warn_if_readable_by_others(&key_path);
            std::fs::read_to_string(&key_path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", key_path.display()))?
        } else {
            let key = rcgen::KeyPair::generate()?;
            create_private_dir(&dir)?;
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            let _ = std::fs::remove_file(&cert_path); // belonged to an older key
            key.serialize_pem()
        };
        if !cert_path.exists() {
            let key = rcgen::KeyPair::from_pem(&key_pem)
                .map_err(|e| anyhow::anyhow!("{} is not a key: {e}", key_path.display()))?;
            let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "lab3 server");
            let cert = params.self_signed(&key)?;
            write_private(&cert_path, cert.pem().as_bytes())?;
        }
        let unreadable = |p: &PathBuf, e: &dyn fmt::Display| {
            anyhow::anyhow!(
                "{} is damaged ({e}); move the folder {} away to make a new key",
                p.display(),
                dir.display()
            )
        };
        let cert =
            CertificateDer::from_pem_file(&cert_path).map_err(|e| unreadable(&cert_path, &e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| unreadable(&key_path, &e))?;
        Ok(Identity {
            fingerprint: Fingerprint::of(&cert),
            cert,
            key,
        })
    }

    /// The TLS configuration a server with this identity answers with.
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())?;
        // Clients dial once per command: no tickets to keep or resume.
        cfg.send_tls13_tickets = 0;
        cfg.ignore_client_order = true;
        Ok(Arc::new(cfg))
    }
}

/// The TLS configuration of a dialler: TLS 1.3 only, any certificate whose
/// key signs the handshake (see the module doc for why that is enough).
pub fn client_config() -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    };
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.enable_sni = false;
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

/// `ring`, with AES-128-GCM first: with the CPU's AES instructions it is
/// the fastest of the three TLS 1.3 suites, and as strong as needed here.
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::*;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// What a finished TLS handshake tells the layers above.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    /// Keying material exported from this session (RFC 8446 section 7.5):
    /// the same at both ends of one session, unknown to anyone else, and
    /// different on the two legs of a relay that terminates TLS itself.
    pub exporter: [u8; 32],
    /// The other end's certificate, when it showed one (the dialler sees
    /// the server's).
    pub peer_certificate: Option<Fingerprint>,
}

/// A TLS stream over TCP, either end. rustls reads the socket 4 KiB at a
/// time; the buffer under it turns that into one system call per
/// [`READ_BUFFER`] on a link that streams a big file.
pub type TlsStream = tokio_rustls::TlsStream<BufReader<TcpStream>>;

/// The buffer between the socket and TLS on the receiving side.
const READ_BUFFER: usize = 256 * 1024;
/// How much rustls may hold to send: a 256 KiB frame of a file is taken
/// and written out in one go (the default, 64 KiB, costs four rounds of
/// system calls per frame).
const SEND_BUFFER: usize = 1024 * 1024;

/// Runs the dialler's side of the TLS handshake over `tcp`.
pub async fn connect(
    cfg: Arc<ClientConfig>,
    tcp: TcpStream,
) -> std::io::Result<(TlsStream, Session)> {
    let name = ServerName::try_from(SERVER_NAME).expect("a valid name");
    let tcp = BufReader::with_capacity(READ_BUFFER, tcp);
    let mut tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await?;
    tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER));
    let session = session_of(tls.get_ref().1).map_err(std::io::Error::other)?;
    Ok((tokio_rustls::TlsStream::Client(tls), session))
}

/// Runs the server's side of the TLS handshake over `tcp`.
pub async fn accept(
    cfg: Arc<ServerConfig>,
    tcp: TcpStream,
) -> std::io::Result<(TlsStream, Session)> {
    let tcp = BufReader::with_capacity(READ_BUFFER, tcp);
    let mut tls = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await?;
    tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER));
    let session = session_of(tls.get_ref().1).map_err(std::io::Error::other)?;
    Ok((tokio_rustls::TlsStream::Server(tls), session))
}

/// What the finished handshake of `conn` (either end) established.
pub fn session_of<D>(conn: &rustls::ConnectionCommon<D>) -> Result<Session, rustls::Error> {
    Ok(Session {
        exporter: conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)?,
        peer_certificate: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(Fingerprint::of),
    })
}

/// Accepts any certificate, but still checks that its key signed the
/// handshake: the session is then bound to that key, whose fingerprint
/// pinning compares.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Makes `dir` (and its parents), closed to everyone but its owner.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file (created readable by
/// its owner only), flushed, and a rename, its folder flushed after, so no
/// half-written key is ever read, nor a key lost to a power cut.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    // The new name on disk too: a power cut after the first start must not
    // lose the key (a new one is a new fingerprint, which a pinned peer
    // refuses).
    crate::durable::sync_dir(dir)?;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "{} can be read by others than its owner (chmod 600 it)",
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_reads_back_in_the_spellings_people_paste() {
        let f = Fingerprint([0xab; 32]);
        let shown = f.to_string();
        assert_eq!(shown.len(), 7 + 64);
        assert_eq!(shown.parse::<Fingerprint>().unwrap(), f);
        let bare = "AB:".repeat(31) + "AB";
        assert_eq!(bare.parse::<Fingerprint>().unwrap(), f);
        assert!("sha256:abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn the_identity_is_made_once_kept_private_and_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("tls")), 0o700);
            assert_eq!(mode(&dir.path().join("tls/key.pem")), 0o600);
        }
        // A lost certificate is made again from the kept key.
        std::fs::remove_file(dir.path().join("tls/cert.pem")).unwrap();
        let remade = Identity::load_or_create(dir.path()).unwrap();
        assert!(remade.server_config().is_ok());
    }

    #[tokio::test]
    async fn both_ends_export_the_same_keying_material_and_see_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::load_or_create(dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_cfg = id.server_config().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept(server_cfg, tcp).await.unwrap().1
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (_stream, client) = connect(client_config(), tcp).await.unwrap();
        let server = server.await.unwrap();
        assert_eq!(client.exporter, server.exporter);
        assert_eq!(client.peer_certificate, Some(id.fingerprint));
        assert_eq!(server.peer_certificate, None);
    }
}
