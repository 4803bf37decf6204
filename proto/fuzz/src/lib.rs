//! A small mutational fuzz driver that runs on the stable toolchain.
//!
//! Each target in `src/bin/` hands a closure to [`run`]; the driver feeds it
//! seed inputs and random mutations of them (bit flips, byte sets, splices,
//! truncations, random lengths) for a bounded number of iterations or
//! seconds. A panic in the closure aborts the process with the offending
//! input written to `fuzz-crash-<target>.bin`, so any crash is reproducible
//! with `cargo run -p ringcast-fuzz --bin <target> -- --replay FILE`.

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::{Duration, Instant};

/// Bounds for one fuzz run, read from the command line:
/// `[--iters N] [--secs S] [--seed X] [--replay FILE]`.
#[derive(Debug, Clone)]
pub struct Options {
    pub iters: u64,
    pub secs: u64,
    pub seed: u64,
    pub replay: Option<String>,
}

impl Options {
    pub fn from_args() -> Options {
        let mut o = Options {
            iters: 200_000,
            secs: 30,
            seed: 0x5eed,
            replay: None,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i + 1 < args.len() {
            let v = &args[i + 1];
            match args[i].as_str() {
                "--iters" => o.iters = v.parse().unwrap_or(o.iters),
                "--secs" => o.secs = v.parse().unwrap_or(o.secs),
                "--seed" => o.seed = v.parse().unwrap_or(o.seed),
                "--replay" => o.replay = Some(v.clone()),
                _ => {}
            }
            i += 2;
        }
        o
    }
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    input.clear();
    if seeds.is_empty() || rng.gen_ratio(1, 10) {
        let len = rng.gen_range(0..4096);
        input.extend((0..len).map(|_| rng.gen::<u8>()));
        return;
    }
    input.extend_from_slice(&seeds[rng.gen_range(0..seeds.len())]);
    for _ in 0..rng.gen_range(1..8) {
        match rng.gen_range(0..6) {
            0 if !input.is_empty() => {
                let i = rng.gen_range(0..input.len());
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !input.is_empty() => {
                let i = rng.gen_range(0..input.len());
                input[i] = [0, 0xff, 0x7f, 0x80, rng.gen()][rng.gen_range(0..5)];
            }
            2 if !input.is_empty() => {
                let n = rng.gen_range(0..=input.len());
                input.truncate(n);
            }
            3 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                if !other.is_empty() {
                    let a = rng.gen_range(0..other.len());
                    let b = rng.gen_range(a..=other.len());
                    let at = rng.gen_range(0..=input.len());
                    let tail = input.split_off(at);
                    input.extend_from_slice(&other[a..b]);
                    input.extend_from_slice(&tail);
                }
            }
            4 => {
                let at = rng.gen_range(0..=input.len());
                let n = rng.gen_range(1..64);
                let tail = input.split_off(at);
                input.extend((0..n).map(|_| rng.gen::<u8>()));
                input.extend_from_slice(&tail);
            }
            _ if input.len() > 1 => {
                let a = rng.gen_range(0..input.len());
                let b = rng.gen_range(a..input.len());
                input.drain(a..b);
            }
            _ => {}
        }
    }
}

/// Runs `target` over `seeds` and their mutations within the bounds given
/// on the command line, and returns the number of inputs tried.
pub fn run(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8])) -> u64 {
    let opts = Options::from_args();
    run_with(name, seeds, &opts, target)
}

/// Like [`run`] with explicit options, so unit tests can drive a target briefly.
pub fn run_with(name: &str, seeds: &[Vec<u8>], opts: &Options, target: impl Fn(&[u8])) -> u64 {
    if let Some(path) = &opts.replay {
        let data = std::fs::read(path).unwrap_or_default();
        target(&data);
        return 1;
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let deadline = Instant::now() + Duration::from_secs(opts.secs);
    let mut input = Vec::new();
    for seed in seeds {
        target(seed);
    }
    let mut n = 0;
    while n < opts.iters && Instant::now() < deadline {
        mutate(&mut rng, seeds, &mut input);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        if res.is_err() {
            let file = format!("fuzz-crash-{name}.bin");
            let _ = std::fs::write(&file, &input);
            eprintln!("{name}: crash after {n} inputs; input saved to {file}");
            std::process::exit(1);
        }
        n += 1;
    }
    println!("{name}: {n} inputs, no crash");
    n
}
