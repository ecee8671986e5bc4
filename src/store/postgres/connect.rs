//! Connecting to PostgreSQL from a `--database` URL, with TCP keepalives and
//! `tcp_user_timeout` set so that a dead server or a cut network is noticed
//! in seconds rather than after the kernel's two hours.
//!
//! TLS: none yet. The connection is `NoTls`; a URL asking for TLS
//! (`sslmode=require`) is refused with a clear error rather than silently
//! sent in clear text, and `sslmode=prefer` (libpq's default) falls back to
//! clear text as libpq does against a server without TLS. Use a private
//! network, a Unix socket, or a TLS-terminating proxy until TLS lands
//! (postgres-rustls would be the candidate: no OpenSSL in the static build).

use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use super::PgError;

/// Idle time before the first keepalive probe.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// Between keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// Unanswered probes before the kernel drops the connection.
pub const KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged before the kernel drops the
/// connection (Linux `TCP_USER_TIMEOUT`).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a `postgres://` URL (or a libpq key=value string) into a
/// connection configuration with jobrun's keepalive settings.
pub fn config(url: &str) -> Result<Config, PgError> {
    let mut config: Config = url.parse().map_err(|e| {
        PgError::BadUrl(format!(
            "not a PostgreSQL connection URL ({e}); expected postgres://USER@HOST:PORT/DATABASE"
        ))
    })?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(PgError::BadUrl(
            "sslmode=require: this jobrun does not speak TLS to PostgreSQL yet; use \
             sslmode=disable over a private network or a Unix socket"
                .into(),
        ));
    }
    if config.get_hosts().is_empty() {
        return Err(PgError::BadUrl(
            "no host; expected postgres://USER@HOST:PORT/DATABASE".into(),
        ));
    }
    if config.get_application_name().is_none() {
        config.application_name("jobrun");
    }
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT);
    Ok(config)
}

/// Where a configuration points, for messages (never the password).
pub fn target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("{host}:{port}/{db}")
}

/// Connects, and drives the connection on a task of the current runtime
/// (it ends when the client is dropped or the connection breaks).
pub async fn connect(config: &Config) -> Result<Client, PgError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|source| PgError::Connect {
            target: target(config),
            source,
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gets_keepalives_and_tcp_user_timeout() {
        let c = config("postgres://jobrun:secret@db.example:6543/state").unwrap();
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(c.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(c.get_application_name(), Some("jobrun"));
        let t = target(&c);
        assert_eq!(t, "db.example:6543/state");
        assert!(!t.contains("secret"));
    }

    #[test]
    fn tls_is_refused_clearly_and_garbage_is_named() {
        let e = config("postgres://db/state?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=require") && e.contains("TLS"), "{e}");
        let e = config("mysql://nope").unwrap_err().to_string();
        assert!(e.contains("postgres://USER@HOST:PORT/DATABASE"), "{e}");
        assert!(config("postgres://db/state?sslmode=disable").is_ok());
    }
}
