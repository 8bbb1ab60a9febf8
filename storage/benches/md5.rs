//! MD5 throughput of one stream and of four streams stepped in lanes, beside the `md-5` crate's one stream.
//!
//! `cargo bench -p hoard-storage --bench md5` prints MB/s (the best of five passes over 64 MiB per stream).

// A benchmark measures wall time on the real clock; the simulation's clock seam does not apply here.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use hoard_storage::md5::update_lanes;
use hoard_storage::md5::Md5;
use hoard_storage::md5::LANES;

const STREAM: usize = 64 << 20;
/// Bytes handed over per call, as the encryptor pool hands over one turn of a block.
const PIECE: usize = 64 << 10;

fn best_of_five(bytes: usize, mut pass: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            pass();
            bytes as f64 / start.elapsed().as_secs_f64() / 1e6
        })
        .fold(0.0, f64::max)
}

fn main() {
    let data: Vec<Vec<u8>> = (0..LANES).map(|l| (0..STREAM).map(|i| (i * 31 + l * 7) as u8).collect()).collect();

    let one = best_of_five(STREAM, || {
        let mut h = Md5::new();
        for piece in data[0].chunks(PIECE) {
            h.update(piece);
        }
        black_box(h.finalize());
    });
    println!("hoard md5, one stream:              {one:7.0} MB/s");

    let lanes = best_of_five(LANES * STREAM, || {
        let mut hashers: Vec<Md5> = (0..LANES).map(|_| Md5::new()).collect();
        for at in (0..STREAM).step_by(PIECE) {
            let pieces: Vec<&[u8]> = data.iter().map(|d| &d[at..at + PIECE]).collect();
            let mut refs: Vec<&mut Md5> = hashers.iter_mut().collect();
            update_lanes(&mut refs, &pieces);
        }
        black_box(hashers.into_iter().map(Md5::finalize).collect::<Vec<_>>());
    });
    println!("hoard md5, {LANES} streams in lanes:     {lanes:7.0} MB/s (all streams together)");

    let crate_one = best_of_five(STREAM, || {
        use md5::Digest as _;
        let mut h = md5::Md5::new();
        for piece in data[0].chunks(PIECE) {
            h.update(piece);
        }
        black_box(h.finalize());
    });
    println!("md-5 crate, one stream:             {crate_one:7.0} MB/s");
}
