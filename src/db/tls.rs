//! TLS for the driver, as libpq's sslmodes ask for it.
//!
//! `prefer` and `require` encrypt without checking the server's
//! certificate, so they need no CA store. OpenSSL's `SslConnector`
//! always loads the system's CA bundle when it is built: parsing it was
//! 249 M instructions (about 40 ms), 8 % of a 5-day run's and a quarter of
//! a one-day run's engine CPU (callgrind, bench/HISTORY.md), spent on
//! certificates these modes never look at. Here they get a bare context
//! with the connector's own options and ciphers; `verify-ca` and
//! `verify-full` keep OpenSSL's connector, its store and its host check.
//! The stream and the channel binding are as in `postgres-openssl`.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ssl::{
    Ssl, SslConnector, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslRef,
    SslVerifyMode,
};
use openssl::x509::X509VerifyResult;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio_openssl::SslStream;
use tokio_postgres::tls::{self, ChannelBinding, MakeTlsConnect, TlsConnect};

/// How a connection's TLS session is set up.
#[derive(Clone)]
pub enum Tls {
    /// `verify-ca` (`host` false) and `verify-full` (`host` true).
    Verifying { connector: SslConnector, host: bool },
    /// `prefer` and `require`: encrypted, the certificate not checked.
    Encrypting(SslContext),
}

impl Tls {
    /// OpenSSL's connector: the system's CA store, plus `root_cert`.
    pub fn verifying(host: bool, root_cert: Option<&str>) -> Result<Tls, ErrorStack> {
        let mut builder = SslConnector::builder(SslMethod::tls())?;
        if let Some(path) = root_cert {
            builder.set_ca_file(path)?;
        }
        builder.set_verify(SslVerifyMode::PEER);
        Ok(Tls::Verifying {
            connector: builder.build(),
            host,
        })
    }

    /// The options, modes and ciphers `SslConnector::builder` sets
    /// (openssl 0.10's `ssl/connector.rs`), without its CA store.
    pub fn encrypting() -> Result<Tls, ErrorStack> {
        let mut context = SslContextBuilder::new(SslMethod::tls())?;
        let mut options = SslOptions::ALL
            | SslOptions::NO_COMPRESSION
            | SslOptions::NO_SSLV2
            | SslOptions::NO_SSLV3
            | SslOptions::SINGLE_DH_USE
            | SslOptions::SINGLE_ECDH_USE;
        options &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
        context.set_options(options);
        context.set_mode(
            SslMode::AUTO_RETRY
                | SslMode::ACCEPT_MOVING_WRITE_BUFFER
                | SslMode::ENABLE_PARTIAL_WRITE
                | SslMode::RELEASE_BUFFERS,
        );
        context.set_cipher_list(
            "DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK",
        )?;
        context.set_verify(SslVerifyMode::NONE);
        Ok(Tls::Encrypting(context.build()))
    }

    /// The session for one connection to `domain` (SNI unless it is an
    /// IP address, as OpenSSL's connector does).
    fn session(&self, domain: &str) -> Result<Ssl, ErrorStack> {
        match self {
            Tls::Verifying { connector, host } => {
                let mut configuration = connector.configure()?;
                configuration.set_verify_hostname(*host);
                configuration.into_ssl(domain)
            }
            Tls::Encrypting(context) => {
                let mut ssl = Ssl::new(context)?;
                if domain.parse::<std::net::IpAddr>().is_err() {
                    ssl.set_hostname(domain)?;
                }
                Ok(ssl)
            }
        }
    }
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send + Sync + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = TlsConnector;
    type Error = ErrorStack;

    fn make_tls_connect(&mut self, domain: &str) -> Result<TlsConnector, ErrorStack> {
        Ok(TlsConnector {
            ssl: self.session(domain)?,
        })
    }
}

/// One connection's TLS handshake.
pub struct TlsConnector {
    ssl: Ssl,
}

impl<S> TlsConnect<S> for TlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = Box<dyn Error + Send + Sync>;
    #[allow(clippy::type_complexity)]
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let stream = BufReader::with_capacity(8192, stream);
        Box::pin(async move {
            let mut stream = SslStream::new(self.ssl, stream)?;
            match Pin::new(&mut stream).connect().await {
                Ok(()) => Ok(TlsStream(stream)),
                Err(error) => Err(Box::new(HandshakeError {
                    error,
                    verify_result: stream.ssl().verify_result(),
                }) as _),
            }
        })
    }
}

/// A failed handshake, with why the certificate was refused if it was.
#[derive(Debug)]
struct HandshakeError {
    error: openssl::ssl::Error,
    verify_result: X509VerifyResult,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)?;
        if self.verify_result != X509VerifyResult::OK {
            write!(f, ": {}", self.verify_result)?;
        }
        Ok(())
    }
}

impl Error for HandshakeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

/// An encrypted connection.
pub struct TlsStream<S>(SslStream<BufReader<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tls::TlsStream for TlsStream<S> {
    /// SCRAM's channel binding: the digest of the server's certificate.
    fn channel_binding(&self) -> ChannelBinding {
        match server_end_point(self.0.ssl()) {
            Some(digest) => ChannelBinding::tls_server_end_point(digest),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929's `tls-server-end-point`: the certificate's digest with its
/// signature's hash (SHA-256 for MD5 and SHA-1).
fn server_end_point(ssl: &SslRef) -> Option<Vec<u8>> {
    let cert = ssl.peer_certificate()?;
    let algorithms = cert
        .signature_algorithm()
        .object()
        .nid()
        .signature_algorithms()?;
    let digest = match algorithms.digest {
        Nid::MD5 | Nid::SHA1 => MessageDigest::sha256(),
        nid => MessageDigest::from_nid(nid)?,
    };
    cert.digest(digest).ok().map(|d| d.to_vec())
}
