//! Fuzzing on stable Rust: each target of [`targets`] runs on inputs that
//! proptest generates (random bytes, its seeds mutated byte by byte and with
//! tokens of its grammar spliced in, and strings of those tokens), for a time
//! or a number of inputs. A panic is shrunk by proptest to a small input,
//! which is kept under `fuzz/crashes/<target>/` and replayed by the tests.

pub mod targets;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

pub use targets::{Target, TARGETS};

/// Inputs per call of the runner (between checks of the time).
const CHUNK: u32 = 20_000;

/// What one target's run did.
pub struct Outcome {
    pub inputs: u64,
    pub elapsed: Duration,
    /// A panicking input (shrunk) and its message.
    pub crash: Option<(Vec<u8>, String)>,
}

/// The inputs of a target: random bytes, mutated seeds, strings of tokens.
pub fn inputs(t: &Target) -> BoxedStrategy<Vec<u8>> {
    let seeds = Arc::new((t.seeds)());
    let tokens = t.tokens;
    let n = seeds.len();
    let edits = vec((any::<u16>(), any::<u8>(), 0u8..5, 0..tokens.len()), 1..8);
    prop_oneof![
        1 => vec(any::<u8>(), 0..160),
        5 => (0..n, edits).prop_map(move |(i, edits)| mutate(&seeds[i], &edits, tokens)),
        2 => vec(0..tokens.len(), 0..48).prop_map(move |ix| ix.iter().flat_map(|i| tokens[*i].bytes()).collect()),
    ]
    .boxed()
}

/// Applies byte edits to a seed: overwrite, insert, remove, splice a token, cut.
fn mutate(seed: &[u8], edits: &[(u16, u8, u8, usize)], tokens: &[&str]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(pos, byte, op, token) in edits {
        let p = usize::from(pos) % (b.len() + 1);
        match op {
            0 if p < b.len() => b[p] = byte,
            1 => b.insert(p, byte),
            2 if p < b.len() => drop(b.remove(p)),
            3 => drop(b.splice(p..p, tokens[token].bytes())),
            4 => b.truncate(p.max(1)),
            _ => {}
        }
    }
    b
}

/// Runs `t` until `time` passed or `max_inputs` ran (whichever first).
pub fn run(t: &Target, time: Duration, max_inputs: u64) -> Outcome {
    let strategy = inputs(t);
    let config = Config { cases: CHUNK, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
    let started = Instant::now();
    let mut inputs = 0;
    // A runner counts its cases once: a fresh one per chunk, each from a seed of its own.
    let mut seeds = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let base: u64 =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    while started.elapsed() < time && inputs < max_inputs {
        let mut seed = [0u8; 32];
        seeds.fill_bytes(&mut seed);
        seed[..8].iter_mut().zip(base.to_le_bytes()).for_each(|(s, b)| *s ^= b);
        let mut runner = TestRunner::new_with_rng(config.clone(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        match runner.run(&strategy, |input| {
            (t.run)(&input);
            Ok(())
        }) {
            Ok(()) => inputs += u64::from(CHUNK),
            Err(TestError::Fail(why, input)) => {
                return Outcome { inputs, elapsed: started.elapsed(), crash: Some((input, why.to_string())) };
            }
            Err(TestError::Abort(why)) => panic!("proptest gave up: {why}"),
        }
    }
    Outcome { inputs, elapsed: started.elapsed(), crash: None }
}

/// Where a target's crashing inputs are kept.
pub fn crash_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes").join(target)
}

/// Keeps a crashing input as a regression fixture; its path.
pub fn keep_crash(target: &str, input: &[u8]) -> std::io::Result<PathBuf> {
    let dir = crash_dir(target);
    std::fs::create_dir_all(&dir)?;
    // FNV-1a: a stable name, the same input kept once.
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let path = dir.join(format!("{hash:016x}.bin"));
    std::fs::write(&path, input)?;
    Ok(path)
}
