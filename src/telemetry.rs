//! Logging, set up once: human-readable by default, JSON by config. `RUST_LOG`
//! overrides the configured level.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// actix-http logs every request it cannot parse (a NUL byte in a header, a
/// bad request line) at ERROR before answering 400 itself: a client could
/// fill the log with them. Off unless `RUST_LOG` asks for it.
const QUIET: &str = "actix_http::h1::dispatcher=off";

pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let filter = EnvFilter::new(&log.level);
        match QUIET.parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        }
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.with_ansi(false).try_init(),
    };
}
