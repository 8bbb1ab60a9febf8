//! MD5 of several independent streams at once, for the ETags of concurrent PUTs.
//!
//! MD5 is one long chain of dependent additions: a single stream keeps a core's adders mostly idle
//! (about 490 MB/s per core on the reference machine). Stepping [`LANES`] streams in lockstep, one 32-bit
//! lane each of one SSE register, runs four chains side by side for the cost of one: four streams hash
//! about 1.5 GB/s together with SSE2 and 2.3 GB/s with AVX-512VL, whose single-instruction rotation and
//! three-input logic shorten the chain (`cargo bench -p hoard-storage --bench md5`); with AVX-512 a lone
//! stream goes through one lane of that kernel too (about 590 MB/s against 490). This is the
//! multi-buffer technique that MinIO's md5-simd uses. The AVX-512 copy is called only after the CPU was
//! seen to have AVX-512F and AVX-512VL; other CPUs than x86_64 step the lanes in plain Rust.
//!
//! Invariants:
//! - [`Md5::update`] and [`update_lanes`] give exactly RFC 1321 MD5, whatever the split of a stream into
//!   calls and however streams are grouped into lanes (tested against the `md-5` crate).
//! - Nothing here allocates per block or keeps state between calls beyond each stream's [`Md5`].

/// Streams hashed together by [`update_lanes`].
pub const LANES: usize = 4;

const BLOCK: usize = 64;

/// Per-step left rotations.
const S: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15,
    21,
];

/// The message word each step adds.
const G: [usize; 64] = {
    let mut g = [0; 64];
    let mut i = 0;
    while i < 64 {
        g[i] = match i / 16 {
            0 => i,
            1 => (5 * i + 1) % 16,
            2 => (3 * i + 5) % 16,
            _ => (7 * i) % 16,
        };
        i += 1;
    }
    g
};

/// Per-step constants: `floor(abs(sin(i + 1)) * 2^32)`.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
    0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
    0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
    0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391,
];

const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// The MD5 of one stream in progress.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    /// Bytes of an incomplete block, waiting for the rest.
    pending: [u8; BLOCK],
    pending_len: usize,
    /// Bytes hashed so far.
    len: u64,
}

impl Default for Md5 {
    fn default() -> Self {
        Md5::new()
    }
}

impl std::fmt::Debug for Md5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Md5").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Md5 {
    pub fn new() -> Md5 {
        Md5 { state: INIT, pending: [0; BLOCK], pending_len: 0, len: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        let mut one = [self];
        update_lanes(&mut one, &[data]);
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK];
        let n = self.pending_len;
        tail[..n].copy_from_slice(&self.pending[..n]);
        tail[n] = 0x80;
        let total = if n < BLOCK - 8 { BLOCK } else { 2 * BLOCK };
        tail[total - 8..total].copy_from_slice(&bits.to_le_bytes());
        for block in tail[..total].chunks_exact(BLOCK) {
            compress_one(&mut self.state, block);
        }
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Tops up the pending block from `data`, hashing it once full; returns the rest of `data`.
    fn fill<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.pending_len == 0 {
            return data;
        }
        let take = (BLOCK - self.pending_len).min(data.len());
        self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
        self.pending_len += take;
        if self.pending_len == BLOCK {
            let block = self.pending;
            compress_one(&mut self.state, &block);
            self.pending_len = 0;
        }
        &data[take..]
    }

    /// Keeps the last, incomplete block of `rest` (fewer than 64 bytes) for later.
    fn keep(&mut self, rest: &[u8]) {
        self.pending[self.pending_len..self.pending_len + rest.len()].copy_from_slice(rest);
        self.pending_len += rest.len();
    }
}

/// Adds `data[i]` to `streams[i]` for every `i`, stepping up to [`LANES`] streams together.
///
/// # Panics
/// If the two slices differ in length (a caller's bug, never input).
pub fn update_lanes(streams: &mut [&mut Md5], data: &[&[u8]]) {
    assert_eq!(streams.len(), data.len(), "one slice of data per stream");
    for (group, data) in streams.chunks_mut(LANES).zip(data.chunks(LANES)) {
        update_group(group, data);
    }
}

/// At most [`LANES`] streams.
fn update_group(streams: &mut [&mut Md5], data: &[&[u8]]) {
    let mut rest: [&[u8]; LANES] = [&[]; LANES];
    for (i, (s, d)) in streams.iter_mut().zip(data).enumerate() {
        s.len = s.len.wrapping_add(d.len() as u64);
        rest[i] = s.fill(d);
    }
    // Streams with whole blocks left are stepped together for as many blocks as all of them have; then the
    // ones that ran out drop away, until none has a whole block.
    loop {
        let mut active: [usize; LANES] = [0; LANES];
        let mut n = 0;
        for (i, r) in rest.iter().enumerate().take(streams.len()) {
            if r.len() >= BLOCK {
                active[n] = i;
                n += 1;
            }
        }
        if n == 0 {
            break;
        }
        let blocks = active[..n].iter().map(|&i| rest[i].len() / BLOCK).min().unwrap_or(0);
        if n == 1 && !one_lane_beats_scalar() {
            let i = active[0];
            for block in rest[i][..blocks * BLOCK].chunks_exact(BLOCK) {
                compress_one(&mut streams[i].state, block);
            }
        } else {
            let mut states = [INIT; LANES];
            for (lane, &i) in active[..n].iter().enumerate() {
                states[lane] = streams[i].state;
            }
            // Idle lanes step over the first active stream's data into a state that is thrown away.
            let inputs: [&[u8]; LANES] = std::array::from_fn(|lane| rest[active[if lane < n { lane } else { 0 }]]);
            compress_lanes(&mut states, &inputs, blocks);
            for (lane, &i) in active[..n].iter().enumerate() {
                streams[i].state = states[lane];
            }
        }
        for &i in &active[..n] {
            rest[i] = &rest[i][blocks * BLOCK..];
        }
    }
    for (s, r) in streams.iter_mut().zip(rest) {
        s.keep(r);
    }
}

fn compress_one(state: &mut [u32; 4], block: &[u8]) {
    let mut one = [*state];
    compress_n::<1>(&mut one, [block]);
    *state = one[0];
}

/// Whether the CPU has AVX-512F and AVX-512VL, for the lanes kernel's shortest steps.
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether a lone stream is hashed faster in one lane of the lanes kernel than by [`compress_one`]: with
/// AVX-512 a step's chain is four single-cycle instructions, against five cycles of scalar code.
fn one_lane_beats_scalar() -> bool {
    has_avx512()
}

/// Hashes `blocks` whole blocks of each input into its lane's state.
fn compress_lanes(states: &mut [[u32; 4]; LANES], inputs: &[&[u8]; LANES], blocks: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: `x86::compress_avx512`'s only requirement is that the CPU supports AVX-512F and
            // AVX-512VL, which was checked at run time on the line above.
            unsafe { x86::compress_avx512(states, inputs, blocks) };
        } else {
            x86::compress_sse2(states, inputs, blocks);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    compress_lanes_generic(states, inputs, blocks)
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn compress_lanes_generic(states: &mut [[u32; 4]; LANES], inputs: &[&[u8]; LANES], blocks: usize) {
    for b in 0..blocks {
        let at = b * BLOCK;
        let block: [&[u8]; LANES] = std::array::from_fn(|lane| &inputs[lane][at..at + BLOCK]);
        compress_n::<LANES>(states, block);
    }
}

/// One 64-byte block per lane. Each lane's arithmetic is independent, written lane by lane so that the
/// compiler can keep a step of every lane in one vector instruction.
#[inline(always)]
fn compress_n<const N: usize>(state: &mut [[u32; 4]; N], blocks: [&[u8]; N]) {
    let mut m = [[0u32; N]; 16];
    for (lane, block) in blocks.iter().enumerate() {
        for (j, word) in block.chunks_exact(4).take(16).enumerate() {
            m[j][lane] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
    }
    let mut a: [u32; N] = std::array::from_fn(|l| state[l][0]);
    let mut b: [u32; N] = std::array::from_fn(|l| state[l][1]);
    let mut c: [u32; N] = std::array::from_fn(|l| state[l][2]);
    let mut d: [u32; N] = std::array::from_fn(|l| state[l][3]);
    let (a0, b0, c0, d0) = (a, b, c, d);
    macro_rules! rounds {
        ($range:expr, $f:expr) => {
            for i in $range {
                let g = G[i];
                let mut next = [0u32; N];
                for l in 0..N {
                    let f: u32 = $f(b[l], c[l], d[l]);
                    let t = f.wrapping_add(a[l]).wrapping_add(K[i]).wrapping_add(m[g][l]);
                    next[l] = b[l].wrapping_add(t.rotate_left(S[i]));
                }
                a = d;
                d = c;
                c = b;
                b = next;
            }
        };
    }
    rounds!(0..16, |x: u32, y: u32, z: u32| z ^ (x & (y ^ z)));
    rounds!(16..32, |x: u32, y: u32, z: u32| y ^ (z & (x ^ y)));
    rounds!(32..48, |x: u32, y: u32, z: u32| x ^ y ^ z);
    rounds!(48..64, |x: u32, y: u32, z: u32| y ^ (x | !z));
    for l in 0..N {
        state[l][0] = a0[l].wrapping_add(a[l]);
        state[l][1] = b0[l].wrapping_add(b[l]);
        state[l][2] = c0[l].wrapping_add(c[l]);
        state[l][3] = d0[l].wrapping_add(d[l]);
    }
}

/// The four lanes as the four 32-bit elements of one SSE register, element `i` the stream of lane `i`.
///
/// One MD5 step is a chain of dependent operations (the round function of the new `b`, an addition, a
/// rotation, an addition); the chain's length sets the speed, whatever the width of the register. SSE2 (part
/// of every x86_64 CPU) spends two operations on the round function and three on the rotation; AVX-512VL does
/// each in one (`vpternlogd`, `vprold`). Each block's 64 bytes per lane are loaded as four registers and
/// turned 4x4 so that register `j` holds word `j` of every lane, and all 64 steps are written out, each with
/// its constant and rotation as literals.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::BLOCK;
    use super::G;
    use super::K;
    use super::LANES;
    use super::S;

    const _: () = assert!(LANES == 4, "one lane per 32-bit element of a 128-bit register");

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512VL.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub unsafe fn compress_avx512(states: &mut [[u32; 4]; LANES], inputs: &[&[u8]; LANES], blocks: usize) {
        // SAFETY: `compress::<true>` uses AVX-512F and AVX-512VL instructions beside SSE2, which this
        // function's caller guarantees the CPU has.
        unsafe { compress::<true>(states, inputs, blocks) }
    }

    pub fn compress_sse2(states: &mut [[u32; 4]; LANES], inputs: &[&[u8]; LANES], blocks: usize) {
        // SAFETY: `compress::<false>` uses SSE2 instructions only, and every x86_64 CPU has SSE2.
        unsafe { compress::<false>(states, inputs, blocks) }
    }

    /// # Safety
    /// The CPU must support SSE2, and AVX-512F and AVX-512VL too when `AVX512`.
    #[inline(always)]
    unsafe fn compress<const AVX512: bool>(states: &mut [[u32; 4]; LANES], inputs: &[&[u8]; LANES], blocks: usize) {
        let column = |word: usize| {
            _mm_set_epi32(
                states[3][word] as i32,
                states[2][word] as i32,
                states[1][word] as i32,
                states[0][word] as i32,
            )
        };
        let (mut a, mut b, mut c, mut d) = (column(0), column(1), column(2), column(3));
        for block in 0..blocks {
            let at = block * BLOCK;
            let lanes: [&[u8]; LANES] = std::array::from_fn(|lane| &inputs[lane][at..at + BLOCK]);
            let mut m = [_mm_setzero_si128(); 16];
            for quarter in 0..4 {
                // SAFETY: each of `lanes` is BLOCK (64) bytes long, so the 16 bytes at 16 * quarter lie within
                // it; an unaligned load has no alignment requirement.
                let row = |lane: usize| unsafe { _mm_loadu_si128(lanes[lane][16 * quarter..].as_ptr().cast()) };
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let (t0, t1) = (_mm_unpacklo_epi32(r0, r1), _mm_unpacklo_epi32(r2, r3));
                let (t2, t3) = (_mm_unpackhi_epi32(r0, r1), _mm_unpackhi_epi32(r2, r3));
                m[4 * quarter] = _mm_unpacklo_epi64(t0, t1);
                m[4 * quarter + 1] = _mm_unpackhi_epi64(t0, t1);
                m[4 * quarter + 2] = _mm_unpacklo_epi64(t2, t3);
                m[4 * quarter + 3] = _mm_unpackhi_epi64(t2, t3);
            }
            let (a0, b0, c0, d0) = (a, b, c, d);
            macro_rules! steps {
                ($round:ident: $($i:literal)*) => {$(
                    let t = _mm_add_epi32(_mm_add_epi32(a, _mm_set1_epi32(K[$i] as i32)), m[G[$i]]);
                    let t = _mm_add_epi32(t, $round::<AVX512>(b, c, d));
                    let next = _mm_add_epi32(b, rotate_left::<AVX512, { S[$i] as i32 }, { 32 - S[$i] as i32 }>(t));
                    (a, d, c, b) = (d, c, b, next);
                )*};
            }
            steps!(f: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            steps!(g: 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
            steps!(h: 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47);
            steps!(i: 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
            a = _mm_add_epi32(a, a0);
            b = _mm_add_epi32(b, b0);
            c = _mm_add_epi32(c, c0);
            d = _mm_add_epi32(d, d0);
        }
        for (word, v) in [a, b, c, d].into_iter().enumerate() {
            // SAFETY: `__m128i` and `[u32; 4]` are both 16 plain bytes, and every bit pattern is a valid `[u32; 4]`.
            let v: [u32; 4] = unsafe { std::mem::transmute::<__m128i, [u32; 4]>(v) };
            for (lane, state) in states.iter_mut().enumerate() {
                state[word] = v[lane];
            }
        }
    }

    /// `x` rotated left by `L` bits in each lane (`R` is `32 - L`).
    #[inline(always)]
    unsafe fn rotate_left<const AVX512: bool, const L: i32, const R: i32>(x: __m128i) -> __m128i {
        if AVX512 {
            _mm_rol_epi32::<L>(x)
        } else {
            _mm_or_si128(_mm_slli_epi32::<L>(x), _mm_srli_epi32::<R>(x))
        }
    }

    /// `x ? y : z`, bit by bit.
    #[inline(always)]
    unsafe fn f<const AVX512: bool>(x: __m128i, y: __m128i, z: __m128i) -> __m128i {
        if AVX512 {
            _mm_ternarylogic_epi32::<0xca>(x, y, z)
        } else {
            _mm_xor_si128(z, _mm_and_si128(x, _mm_xor_si128(y, z)))
        }
    }

    /// `z ? x : y`, bit by bit.
    #[inline(always)]
    unsafe fn g<const AVX512: bool>(x: __m128i, y: __m128i, z: __m128i) -> __m128i {
        if AVX512 {
            _mm_ternarylogic_epi32::<0xe4>(x, y, z)
        } else {
            _mm_xor_si128(y, _mm_and_si128(z, _mm_xor_si128(x, y)))
        }
    }

    /// `x ^ y ^ z`.
    #[inline(always)]
    unsafe fn h<const AVX512: bool>(x: __m128i, y: __m128i, z: __m128i) -> __m128i {
        if AVX512 {
            _mm_ternarylogic_epi32::<0x96>(x, y, z)
        } else {
            _mm_xor_si128(_mm_xor_si128(x, y), z)
        }
    }

    /// `y ^ (x | !z)`.
    #[inline(always)]
    unsafe fn i<const AVX512: bool>(x: __m128i, y: __m128i, z: __m128i) -> __m128i {
        if AVX512 {
            _mm_ternarylogic_epi32::<0x39>(x, y, z)
        } else {
            _mm_xor_si128(y, _mm_or_si128(x, _mm_xor_si128(z, _mm_set1_epi32(-1))))
        }
    }
}

#[cfg(test)]
mod tests {
    use ::md5::Digest;
    use rand::rngs::StdRng;
    use rand::Rng;
    use rand::SeedableRng;

    use super::*;

    fn reference(data: &[u8]) -> [u8; 16] {
        ::md5::Md5::digest(data).into()
    }

    #[test]
    fn known_vectors_of_rfc_1321() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            let mut h = Md5::new();
            h.update(input);
            assert_eq!(hex::encode(h.finalize()), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn every_length_around_block_and_padding_edges() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in 0..data.len() {
            let mut h = Md5::new();
            h.update(&data[..len]);
            assert_eq!(h.finalize(), reference(&data[..len]), "length {len}");
        }
    }

    /// Random streams cut at random points, fed in random groups (1 to 9 streams per call, some empty
    /// pieces): every stream's digest is the reference digest of its whole.
    #[test]
    fn streams_stepped_in_lanes_equal_their_reference_digests() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..40 {
            let count = rng.gen_range(1..=9);
            let streams: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let len = if rng.gen_bool(0.3) { rng.gen_range(0..200) } else { rng.gen_range(0..20_000) };
                    (0..len).map(|_| rng.gen()).collect()
                })
                .collect();
            let mut hashers: Vec<Md5> = (0..count).map(|_| Md5::new()).collect();
            let mut at = vec![0usize; count];
            while at.iter().zip(&streams).any(|(a, s)| *a < s.len()) {
                let pieces: Vec<&[u8]> = (0..count)
                    .map(|i| {
                        let left = streams[i].len() - at[i];
                        let take = if rng.gen_bool(0.5) {
                            left.min(64 * rng.gen_range(0..40))
                        } else {
                            rng.gen_range(0..=left)
                        };
                        let piece = &streams[i][at[i]..at[i] + take];
                        at[i] += take;
                        piece
                    })
                    .collect();
                let mut refs: Vec<&mut Md5> = hashers.iter_mut().collect();
                update_lanes(&mut refs, &pieces);
            }
            for (i, h) in hashers.into_iter().enumerate() {
                assert_eq!(h.finalize(), reference(&streams[i]), "round {round}, stream {i} of {count}");
            }
        }
    }

    /// Every kernel this CPU can run (the generic one, SSE2, AVX-512) gives the same states, from lanes that
    /// start in different states.
    #[test]
    fn the_generic_and_the_vector_kernels_agree() {
        let mut rng = StdRng::seed_from_u64(11);
        let data: Vec<Vec<u8>> = (0..LANES).map(|_| (0..BLOCK * 5).map(|_| rng.gen()).collect()).collect();
        let inputs: [&[u8]; LANES] = std::array::from_fn(|l| &data[l][..]);
        let start: [[u32; 4]; LANES] = std::array::from_fn(|_| std::array::from_fn(|_| rng.gen()));
        let mut generic = start;
        compress_lanes_generic(&mut generic, &inputs, 5);
        let mut chosen = start;
        compress_lanes(&mut chosen, &inputs, 5);
        assert_eq!(generic, chosen);
        let mut one_by_one = start;
        for (lane, state) in one_by_one.iter_mut().enumerate() {
            for block in inputs[lane].chunks_exact(BLOCK) {
                compress_one(state, block);
            }
        }
        assert_eq!(generic, one_by_one);
        #[cfg(target_arch = "x86_64")]
        {
            let mut sse2 = start;
            x86::compress_sse2(&mut sse2, &inputs, 5);
            assert_eq!(generic, sse2);
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
                let mut avx512 = start;
                // SAFETY: the CPU was seen to support AVX-512F and AVX-512VL on the line above.
                unsafe { x86::compress_avx512(&mut avx512, &inputs, 5) };
                assert_eq!(generic, avx512);
            }
        }
    }
}
