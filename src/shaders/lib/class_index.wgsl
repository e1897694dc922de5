// A class index held in an f32 (the engine's tensors are all f32, as embedding ids are): the
// index as u32 when it is an integer in [0, classes), else -1. Callers treat -1 as "no valid
// target" and never use it to address memory.
#import "lib/float.wgsl"

fn class_index(v: f32, classes: u32) -> i32 {
  if (is_finite(v) && v >= 0.0 && v < f32(classes) && floor(v) == v) { return i32(v); }
  return -1;
}
