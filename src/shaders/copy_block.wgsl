// dst[b * dst_block + r * dst_stride + dst_offset + j] = src[b * src_block + r * src_stride + src_offset + j]
// for b < blocks, r < rows, j < width: copies a block of columns, which is what slice and concat
// along any axis reduce to; with several blocks, a swap of two axes (a convolution's weight as
// [inC, outC, kH*kW], its output gradient as [outC, N, OH*OW]).
override WG: u32 = 256;

struct Params { blocks: u32, rows: u32, width: u32, src_block: u32, src_stride: u32, src_offset: u32, dst_block: u32, dst_stride: u32, dst_offset: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  let perBlock = p.rows * p.width;
  if (i >= p.blocks * perBlock) { return; }
  let b = i / perBlock;
  let r = (i % perBlock) / p.width;
  let j = i % p.width;
  dst[b * p.dst_block + r * p.dst_stride + p.dst_offset + j] = src[b * p.src_block + r * p.src_stride + p.src_offset + j];
}
