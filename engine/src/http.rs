//! The one way Conveyor builds outgoing HTTP clients: rustls with the ring provider
//! (installed once per process), a total timeout, and pooled connections.

use std::time::Duration;

/// Makes ring the process's TLS provider, once; later calls do nothing.
pub fn install_tls_provider() {
    // Err only means a provider is already installed: exactly what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A pooled client whose every request gives up after `timeout`.
pub fn client(timeout: Duration) -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        // Only a broken TLS setup fails here, at start-up; a client without the
        // timeout would hang on a silent upstream, so fail loudly instead.
        .expect("an HTTP client with rustls and ring builds")
}
