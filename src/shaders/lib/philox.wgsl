// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw ("Parallel Random
// Numbers: As Easy as 1, 2, 3", SC 2011; Random123's, and cuRAND's, PyTorch's CUDA generator's and
// JAX's `rbg`): four 32-bit words from a 128-bit counter under a 64-bit key, so a kernel's random
// bits depend only on (key, counter), never on how it is launched. Checked against Random123's
// known-answer vectors through gaussian_noise.wgsl (tests/browser/flat.test.ts). Users:
// gaussian_noise.wgsl (counter (q, 0, 0, 0)), quantize8.wgsl (counter (q, 1, 0, 0)).

// High 32 bits of the 64-bit product a * b, from 16-bit halves (WGSL has no 64-bit integers).
fn mulhi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let cross = a0 * b1;
  let mid = ((a0 * b0) >> 16u) + (cross & 0xffffu) + a1 * b0; // < 2^32: no overflow
  return a1 * b1 + (cross >> 16u) + (mid >> 16u);
}

fn philox4x32_10(counter: vec4<u32>, key0: u32, key1: u32) -> vec4<u32> {
  const M0 = 0xD2511F53u;
  const M1 = 0xCD9E8D57u;
  var c = counter;
  var k = vec2<u32>(key0, key1);
  for (var round = 0u; round < 10u; round++) {
    let hi0 = mulhi(M0, c.x);
    let hi1 = mulhi(M1, c.z);
    c = vec4<u32>(hi1 ^ c.y ^ k.x, M1 * c.z, hi0 ^ c.w ^ k.y, M0 * c.x);
    k += vec2<u32>(0x9E3779B9u, 0xBB67AE85u); // Weyl key schedule (unused after round 10)
  }
  return c;
}
