//! One Redis connection type for a single server or a Redis Cluster, so the
//! rest of the code is written once.
//!
//! On a cluster every command is routed by its key's slot. All keys of shard S
//! carry the hash tag `{S}`, so a shard's MULTI/EXEC stays in one slot. A plain
//! (non-transactional) pipeline may span slots: on a cluster its commands are
//! sent one by one, concurrently, and the replies put back in order. The one
//! thing that cannot span slots is a single command naming keys of several
//! shards (XREAD over many streams); the stream reader does that per shard on
//! a cluster (see `reader`).

use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Where Redis is: one server, or the seed nodes of a cluster. Its `Debug`
/// and `describe` never show a user name or password.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A Redis URL without its user name and password: `redis://***@host:6379/0`.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let sep = if scheme.is_empty() { "" } else { "://" };
            format!("{scheme}{sep}***@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

/// A cheap-to-clone handle; concurrent commands are pipelined on it.
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    /// Reconnects by itself (the HTTP side's write link).
    Managed(ConnectionManager),
    /// Routes by slot and follows the cluster's topology by itself.
    Cluster(ClusterConnection),
}

impl Target {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// For logs, errors and `/ready`: the URL, or the seed nodes, with any
    /// credentials left out.
    pub fn describe(&self) -> String {
        match self {
            Target::Single(url) => redact(url),
            Target::Cluster(nodes) => {
                format!("cluster {}", nodes.iter().map(|n| redact(n)).collect::<Vec<_>>().join(","))
            }
        }
    }

    fn cluster(nodes: &[String], connect: Duration, response: Duration) -> RedisResult<redis::cluster::ClusterClient> {
        ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(connect)
            .response_timeout(response)
            .retries(2)
            .build()
    }

    /// A multiplexed connection (or a cluster connection) with these deadlines.
    pub async fn connect(&self, connect_timeout: Duration, response_timeout: Duration) -> RedisResult<Conn> {
        match self {
            Target::Single(url) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let client = redis::Client::open(url.as_str())?;
                Ok(Conn::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
            }
            Target::Cluster(nodes) => Ok(Conn::Cluster(
                Self::cluster(nodes, connect_timeout, response_timeout)?.get_async_connection().await?,
            )),
        }
    }

    /// A connection that reconnects by itself after Redis comes back.
    pub async fn managed(&self, connect_timeout: Duration) -> RedisResult<Conn> {
        match self {
            Target::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(Duration::from_secs(5)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                let client = redis::Client::open(url.as_str())?;
                Ok(Conn::Managed(ConnectionManager::new_with_config(client, config).await?))
            }
            Target::Cluster(_) => self.connect(connect_timeout, Duration::from_secs(5)).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipe, offset, count),
            Conn::Managed(c) => c.req_packed_commands(pipe, offset, count),
            Conn::Cluster(c) => {
                if pipe.is_transaction() {
                    return c.req_packed_commands(pipe, offset, count);
                }
                let conn = c.clone();
                Box::pin(async move {
                    let replies = join_all(pipe.cmd_iter().map(|cmd| {
                        let mut conn = conn.clone();
                        async move { conn.req_packed_command(cmd).await }
                    }))
                    .await;
                    replies.into_iter().collect()
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Managed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        assert_eq!(redact("redis://default:s3cret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("rediss://:p%40ss@host/1?x=y"), "rediss://***@host/1?x=y");
        assert_eq!(redact("redis://host:6379/0"), "redis://host:6379/0");
        let cluster = Target::Cluster(vec!["redis://a:b@n1:1".into(), "redis://n2:2".into()]);
        assert_eq!(cluster.describe(), "cluster redis://***@n1:1,redis://n2:2");
        assert!(!format!("{:?}", Target::Single("redis://u:pw@h:1".into())).contains("pw"));
    }
}
