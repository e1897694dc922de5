// Every pass of a convolution as one implicit matrix product: for batch entry z (workgroup z) and
// image i = z0 + z,
//   C_z[m, n] = act(bias[m] + sum over k < K of A_i[m, k] * x[i * x_stride + columns[n] + steps[k]])
// where x is an input zero-padded on every side, so that no load needs a bounds check, and the
// two tables place a column and a step of the gathered matrix in one padded image. With taps[k],
// where tap k = (channel, kh, kw) sits, and window[p], where output pixel p's window starts:
//   forward:         A = W [OC, C*KH*KW], columns = window, steps = taps
//   input gradient:  (stride 1) the same over the padded output gradient with W' [C, OC*KH*KW]
//                    (W axis-swapped) and taps that read each window flipped
//   weight gradient: A_i = dy_i [OC, OH*OW], columns = taps, steps = window: image i's share
// It is the product W . col of im2col and the matmul kernel, without writing col: each invocation
// computes an 8x8 block of C_z from registers like matmul_block8.wgsl, gathering the inputs of its
// 8 columns step by step.
#import "lib/activation.wgsl"
#import "lib/register_block.wgsl"
override WG_X: u32 = 8;
override WG_Y: u32 = 8;
// The rows of A (a_row apart) and their batch stride are multiples of 4: A is loaded in vec4s.
override ALIGNED: bool = false;
override HAS_BIAS: bool = false;
// An activation of lib/activation.wgsl whose derivative follows from the output.
override ACT: u32 = ACT_NONE;

struct Dims { M: u32, N: u32, K: u32, alpha: f32, a_row: u32, a_stride: u32, x_stride: u32, c_stride: u32, z0: u32 }

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> columns: array<u32>;
@group(0) @binding(3) var<storage, read> steps: array<u32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<uniform> d: Dims;

// Where A_i's rows row .. row + 3 start (rows past M repeat the last: computed, never stored).
fn row_starts(i: u32, row: u32) -> vec4<u32> {
  let last = d.M - 1u;
  return vec4(min(row, last), min(row + 1u, last), min(row + 2u, last), min(row + 3u, last)) * d.a_row + i * d.a_stride;
}

// A_i[row .. row + 3, k .. k + 3] as 4 rows (ALIGNED only), from row_starts in vec4s. (With the
// rows' vec4 starts made once, outside the loop, the step ran 40% faster on SwiftShader than
// shifting each row's element offset every step.)
fn a_tile(starts: vec4<u32>, k: u32) -> mat4x4<f32> {
  let kv = k >> 2u;
  return mat4x4<f32>(a[starts.x + kv], a[starts.y + kv], a[starts.z + kv], a[starts.w + kv]);
}

fn a_column(starts: vec4<u32>, k: u32) -> vec4<f32> {
  let f = starts + k;
  return vec4(lane(a[f.x >> 2u], f.x & 3u), lane(a[f.y >> 2u], f.y & 3u), lane(a[f.z >> 2u], f.z & 3u), lane(a[f.w >> 2u], f.w & 3u));
}

fn gather(at: vec4<u32>) -> vec4<f32> {
  return vec4(x[at.x], x[at.y], x[at.z], x[at.w]);
}

// Where columns col .. col + 3 start in image i (columns past N repeat the last).
fn column_starts(i: u32, col: u32) -> vec4<u32> {
  let last = d.N - 1u;
  return vec4(columns[min(col, last)], columns[min(col + 1u, last)], columns[min(col + 2u, last)], columns[min(col + 3u, last)]) + i * d.x_stride;
}

fn store_block(acc: mat4x4<f32>, z: u32, r: u32, col: u32) {
  for (var i = 0u; i < 4u; i++) {
    let row = r + i;
    if (row < d.M) {
      for (var j = 0u; j < 4u; j++) {
        if (col + j < d.N) {
          var v = acc[i][j];
          if (HAS_BIAS) { v += bias[row]; }
          c[z * d.c_stride + row * d.N + col + j] = act_value(ACT, v, d.alpha);
        }
      }
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.y * 8u; // first row of this block
  let col = gid.x * 8u; // first column
  if (r >= d.M || col >= d.N) { return; }
  let z = gid.z;
  let image = d.z0 + z;
  let top_rows = row_starts(image, r);
  let bottom_rows = row_starts(image, r + 4u);
  let top_vecs = top_rows >> vec4(2u);
  let bottom_vecs = bottom_rows >> vec4(2u);
  let left_at = column_starts(image, col);
  let right_at = column_starts(image, col + 4u);
  // acc_ij: rows r + 4i .., columns col + 4j ..; left[s] is the gathered row k + s of columns col ..
  var acc00 = mat4x4<f32>();
  var acc01 = mat4x4<f32>();
  var acc10 = mat4x4<f32>();
  var acc11 = mat4x4<f32>();
  let k_end = select(0u, d.K & ~3u, ALIGNED);
  for (var k = 0u; k < k_end; k += 4u) {
    let top = a_tile(top_vecs, k);
    let bottom = a_tile(bottom_vecs, k);
    let s = vec4(steps[k], steps[k + 1u], steps[k + 2u], steps[k + 3u]);
    let left = mat4x4<f32>(gather(left_at + s.x), gather(left_at + s.y), gather(left_at + s.z), gather(left_at + s.w));
    let right = mat4x4<f32>(gather(right_at + s.x), gather(right_at + s.y), gather(right_at + s.z), gather(right_at + s.w));
    acc00 += left * top;
    acc01 += right * top;
    acc10 += left * bottom;
    acc11 += right * bottom;
  }
  for (var k = k_end; k < d.K; k++) {
    let top = a_column(top_rows, k);
    let bottom = a_column(bottom_rows, k);
    let left = gather(left_at + steps[k]);
    let right = gather(right_at + steps[k]);
    acc00 += outer(top, left);
    acc01 += outer(top, right);
    acc10 += outer(bottom, left);
    acc11 += outer(bottom, right);
  }
  store_block(acc00, z, r, col);
  store_block(acc01, z, r, col + 4u);
  store_block(acc10, z, r + 4u, col);
  store_block(acc11, z, r + 4u, col + 4u);
}
