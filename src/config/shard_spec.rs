//! `instance.shards`: which shards an instance owns, as ranges and lists.

use serde::Deserialize;

/// `"0-31"` or `[0, "4-7"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ShardSpec {
    Number(i64),
    Text(String),
    List(Vec<toml::Value>),
}

impl ShardSpec {
    /// The shard numbers, ascending and without repeats.
    pub fn resolve(&self, count: u32) -> Result<Vec<u32>, String> {
        let parts: Vec<String> = match self {
            ShardSpec::Number(n) => vec![n.to_string()],
            ShardSpec::Text(t) => t.split(',').map(|p| p.trim().to_string()).collect(),
            ShardSpec::List(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    toml::Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(format!("{other} is neither a shard number nor a range")),
                })
                .collect::<Result<_, _>>()?,
        };
        let mut shards = std::collections::BTreeSet::new();
        for part in &parts {
            if part == "all" {
                shards.extend(0..count);
                continue;
            }
            let number = |n: &str| {
                n.trim().parse::<u32>().ok().filter(|n| *n < count).ok_or_else(|| {
                    format!("{n:?} is not a shard number below shards.count ({count}); write \"all\", \"0-31\" or \"0,4-7\"")
                })
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("range {part:?} is backwards"));
                    }
                    shards.extend(a..=b);
                }
                None => {
                    shards.insert(number(part)?);
                }
            }
        }
        if shards.is_empty() {
            return Err("names no shard".into());
        }
        Ok(shards.into_iter().collect())
    }
}
