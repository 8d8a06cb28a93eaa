//! `restrictd-fuzz [--time 30s] [--inputs N] [TARGET...]`: runs each target
//! (all by default) for the time or the number of inputs, whichever ends
//! first; keeps a panicking input under `fuzz/crashes/<target>/` and exits 1.

use std::process::ExitCode;
use std::time::Duration;

use restrictd_fuzz::{keep_crash, run, TARGETS};

fn main() -> ExitCode {
    let (mut time, mut inputs, mut names) = (Duration::from_secs(30), u64::MAX, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().unwrap_or_else(|| usage(&format!("{arg} needs {what}")));
        match arg.as_str() {
            "--time" => {
                time = humantime::parse_duration(&value("a duration")).unwrap_or_else(|e| usage(&e.to_string()))
            }
            "--inputs" => inputs = value("a number").parse().unwrap_or_else(|e| usage(&format!("--inputs: {e}"))),
            "--list" => {
                TARGETS.iter().for_each(|t| println!("{}", t.name));
                return ExitCode::SUCCESS;
            }
            name if TARGETS.iter().any(|t| t.name == name) => names.push(name.to_string()),
            other => usage(&format!("unknown argument or target {other:?}")),
        }
    }
    let mut failed = false;
    for t in TARGETS.iter().filter(|t| names.is_empty() || names.iter().any(|n| n == t.name)) {
        let o = run(t, time, inputs);
        let rate = o.inputs as f64 / o.elapsed.as_secs_f64();
        match o.crash {
            None => println!(
                "{:<10} {:>12} inputs in {:>7.1} s ({rate:>9.0}/s), 0 panics",
                t.name,
                o.inputs,
                o.elapsed.as_secs_f64()
            ),
            Some((input, why)) => {
                failed = true;
                let kept =
                    keep_crash(t.name, &input).map(|p| p.display().to_string()).unwrap_or_else(|e| e.to_string());
                println!(
                    "{:<10} PANIC after {} inputs: {why}\n  input {:?}\n  kept as {kept}",
                    t.name,
                    o.inputs,
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage(message: &str) -> ! {
    eprintln!("restrictd-fuzz: {message}\nusage: restrictd-fuzz [--time 30s] [--inputs N] [--list] [TARGET...]");
    std::process::exit(2)
}
