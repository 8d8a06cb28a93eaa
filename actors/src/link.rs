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

/// Where Redis is: one server, or the seed nodes of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
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

    /// For logs: the URL, or the seed nodes.
    pub fn describe(&self) -> String {
        match self {
            Target::Single(url) => url.clone(),
            Target::Cluster(nodes) => format!("cluster {}", nodes.join(",")),
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
