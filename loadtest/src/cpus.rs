//! `--server-cpus`: the spawned servers (Redis, restrictd, the ceiling
//! handler) on some CPUs and the generator on the others, as if the clients
//! ran on other machines. On one shared set of cores the generator's own
//! backlog is part of every latency, and offering more load takes CPU from the
//! service it loads.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

/// The servers' CPUs, once [`split`] ran.
static SERVER_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Parses a CPU list as `taskset -c` takes it: `0`, `0-1`, `0,2-3`.
pub fn parse(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let number = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("{s:?} is not a CPU number in {list:?}"));
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (number(lo)?, number(hi)?),
            None => (number(part)?, number(part)?),
        };
        if lo > hi || hi >= libc::CPU_SETSIZE as usize {
            return Err(format!("{part:?} is not a CPU range in {list:?}"));
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Puts this process (call it before any thread starts) on the CPUs it may
/// use other than `servers`, and makes [`command`] start programs on
/// `servers`. Returns the generator's CPUs.
pub fn split(servers: Vec<usize>) -> Result<Vec<usize>, String> {
    let allowed = allowed().map_err(|e| format!("cannot read this process's CPUs: {e}"))?;
    if let Some(c) = servers.iter().find(|c| !allowed.contains(c)) {
        return Err(format!("CPU {c} is not one this process may use ({allowed:?})"));
    }
    let generator: Vec<usize> = allowed.into_iter().filter(|c| !servers.contains(c)).collect();
    if generator.is_empty() {
        return Err(format!("no CPU is left for the generator beside the servers' {servers:?}"));
    }
    set_affinity(&generator).map_err(|e| format!("cannot move the generator to CPUs {generator:?}: {e}"))?;
    SERVER_CPUS.set(servers).map_err(|_| "the CPUs were already split".to_string())?;
    Ok(generator)
}

/// A command for a server program: on the servers' CPUs after [`split`],
/// wherever the kernel puts it otherwise.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if let Some(cpus) = SERVER_CPUS.get() {
        // SAFETY: the closure only calls sched_setaffinity (async-signal-safe)
        // on a set built on the stack; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || set_affinity(cpus));
        }
    }
    cmd
}

/// How many CPUs a server program [`command`] starts may run on: the
/// servers' after [`split`], else this process's. A server with one worker
/// per core (restrictd's default) has this many.
pub fn server_count() -> io::Result<usize> {
    match SERVER_CPUS.get() {
        Some(cpus) => Ok(cpus.len()),
        None => allowed().map(|a| a.len()),
    }
}

/// The CPUs this process may run on.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data, zero is an empty set; the size passed is its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: as in `allowed`; every CPU number is below CPU_SETSIZE (checked by `parse`).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: a thousand
/// producers are a thousand connections, past the common soft default.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct we pass.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if !raised {
        eprintln!("cannot raise the open files limit: {}", io::Error::last_os_error());
    }
}

/// Asks the kernel for the shortest scheduler slice (0.1 ms, Linux 6.12 and
/// later) for the calling thread: woken, it preempts a thread with a longer
/// slice instead of waiting out that thread's turn. The checks' prober runs
/// so, as a client on another machine would not wait for the service's (or
/// the generator's) busy threads on the shared cores. Older kernels ignore it.
pub fn shortest_slice() {
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: 100_000,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a live, fully initialised sched_attr whose `size`
    // says how much of it the kernel may read; pid 0 is the calling thread.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const libc::sched_attr, 0) } != 0 {
        eprintln!("cannot shorten the prober's slice: {}", io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_taskset_reads_them() {
        assert_eq!(parse("0"), Ok(vec![0]));
        assert_eq!(parse("0-2"), Ok(vec![0, 1, 2]));
        assert_eq!(parse("3, 0-1,1"), Ok(vec![0, 1, 3]));
        for bad in ["", "a", "2-1", "0-", "99999"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
