//! TLS for every HTTP client faultline builds (HTTP provider, experiment URLs, log
//! sinks, OTLP exporters): rustls with the *ring* crypto provider.
//!
//! reqwest is built without a provider of its own, so one must be installed for the
//! process before the first client is built (building one panics otherwise). Every
//! place that builds a client calls [`init`] first; it is cheap after the first call.

/// Install *ring* as the process-wide rustls provider (once; a provider installed
/// earlier by an embedding program is kept).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_can_be_built_after_init() {
        super::init();
        super::init();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        reqwest::Client::builder().build().unwrap();
        reqwest::blocking::Client::builder().build().unwrap();
    }
}
