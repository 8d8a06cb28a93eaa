//! The service under test: a running one, or a private one this process starts.

use std::time::Duration;

use loadtest::spawn::{Redis, Service};

use crate::cli::Common;

/// The service under test: a running one, or a private one we started.
pub(crate) struct Target {
    pub(crate) addr: String,
    /// Where client services send checks: the spawned instance's checks
    /// listener (`http.checks_addr`), or `--checks-target`, or `addr`.
    pub(crate) checks_addr: String,
    _redis: Option<Redis>,
    _service: Option<Service>,
    _owner: Option<Service>,
}

pub(crate) const QUIET_TRIPWIRE: [(&str, &str); 2] =
    [("RESTRICTD_TRIPWIRE__THRESHOLD", "1.0"), ("RESTRICTD_TRIPWIRE__MIN_RESTRICTED", "1000000000")];

pub(crate) fn target(c: &Common) -> anyhow::Result<Target> {
    target_with(c, &[])
}

/// `target`, a spawned instance having `extra` in its environment too.
pub(crate) fn target_with(c: &Common, extra: &[(&str, &str)]) -> anyhow::Result<Target> {
    if let Some(addr) = &c.target {
        let checks_addr = c.checks_target.clone().unwrap_or_else(|| addr.clone());
        return Ok(Target { addr: addr.clone(), checks_addr, _redis: None, _service: None, _owner: None });
    }
    let bin =
        c.spawn.as_ref().ok_or_else(|| anyhow::anyhow!("give --target host:port or --spawn path/to/restrictd"))?;
    let redis = Redis::start();
    let owner = c.non_owner.then(|| {
        let env = [
            QUIET_TRIPWIRE[0],
            QUIET_TRIPWIRE[1],
            ("RESTRICTD_INSTANCE__SHARDS", "1-63"),
            ("RESTRICTD_INSTANCE__ID", "owner"),
        ];
        let owner = Service::launch(bin, &c.config, &redis.url(), &env);
        owner.wait_ready(Duration::from_secs(60));
        owner
    });
    let mut env = QUIET_TRIPWIRE.to_vec();
    if c.non_owner {
        env.extend([("RESTRICTD_INSTANCE__SHARDS", "0"), ("RESTRICTD_INSTANCE__ID", "non-owner")]);
    }
    // Checks on a listener of their own, as the README tells client services.
    let checks_addr = format!("127.0.0.1:{}", loadtest::spawn::free_port());
    env.push(("RESTRICTD_HTTP__CHECKS_ADDR", &checks_addr));
    env.extend_from_slice(extra);
    let service = Service::launch(bin, &c.config, &redis.url(), &env);
    service.wait_ready(Duration::from_secs(60));
    Ok(Target {
        addr: service.addr.clone(),
        checks_addr: checks_addr.clone(),
        _redis: Some(redis),
        _service: Some(service),
        _owner: owner,
    })
}
