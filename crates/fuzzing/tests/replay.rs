//! The fuzz targets on stable, in `cargo test`: every input under `fuzz/seeds/TARGET/`
//! (seeds, and the inputs of crashes found, kept as regressions), then mutants of them
//! (bit flips, byte changes, insertions, deletions, repeats, splices). Deterministic:
//! `KVNET_FUZZ_MUTANTS` mutants per target (default 20,000) from `KVNET_FUZZ_SEED`. A
//! failing input is written under the target directory and named in the failure, to be
//! replayed with `cargo fuzz run TARGET FILE` (fuzz/README.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: enough to pick mutations; no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'<', b'\'', b','];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let b = INTERESTING[rng.below(INTERESTING.len())];
                input.insert(rng.below(len + 1), b);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(16));
                input.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                let piece = input[at..at + n].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, piece);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let at = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - at).min(64));
                    let to = rng.below(len + 1);
                    input.splice(to..to, other[at..at + n].iter().copied());
                }
            }
            6 if len > 0 => input.truncate(rng.below(len)),
            _ if len > 1 => {
                let i = rng.below(len - 1);
                input.swap(i, i + 1);
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

fn replay(target: &str) {
    let (_, run) = *kvnet_fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(seeds_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/seeds/{target}: {e}"))
        .map(|f| {
            let path = f.expect("a seed").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("a readable seed"))
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let check = |what: &str, input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-replay");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{target}-{what}"));
            std::fs::write(&file, input).unwrap();
            panic!("{target} failed on {what}, kept as {}", file.display());
        }
    };
    for (name, input) in &seeds {
        check(name, input);
    }
    let inputs: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    let mut rng = Rng(env_u64("KVNET_FUZZ_SEED", 0x006b_766e_6574) | 1);
    let mut current = inputs[0].clone();
    for i in 0..env_u64("KVNET_FUZZ_MUTANTS", 20_000) {
        // Mostly a fresh mutant of a seed, sometimes a mutant of the last mutant.
        if rng.below(4) != 0 {
            current = inputs[rng.below(inputs.len())].clone();
        }
        mutate(&mut rng, &inputs, &mut current);
        check(&format!("mutant-{i}"), &current);
    }
}

#[test]
fn xml() {
    replay("xml");
}

#[test]
fn acl() {
    replay("acl");
}

#[test]
fn api() {
    replay("api");
}

#[test]
fn dhcp4() {
    replay("dhcp4");
}

#[test]
fn dhcp6() {
    replay("dhcp6");
}

#[test]
fn dns() {
    replay("dns");
}

#[test]
fn ra() {
    replay("ra");
}

#[test]
fn nss() {
    replay("nss");
}

#[test]
fn every_target_has_a_test_and_a_fuzz_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in kvnet_fuzzing::TARGETS {
        assert!(seeds_dir(name).is_dir(), "fuzz/seeds/{name} missing");
        assert!(
            fuzz.join(format!("{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs missing"
        );
    }
}
