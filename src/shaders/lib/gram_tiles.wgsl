// How gram.wgsl and gram_finish.wgsl split the pairs of a stack of T vectors: the rows form tiles
// of TILE rows (one tile of all T up to 16 vectors), and each tile pair a <= b is a slice of the
// work. Within a tile pair the pair slots run over rows i of tile a and l of tile b in order, with
// i <= l when a == b (the symmetric pairs once). The importer declares `override T: u32` and
// `override TILE: u32`.

// The tile pair (a, b), a <= b, of index `index` in the order (0,0), (0,1), .., (1,1), ...
fn tile_pair(index: u32) -> vec2<u32> {
  let tiles = (T + TILE - 1u) / TILE;
  var a = 0u;
  var first = 0u;
  while (index >= first + tiles - a) {
    first += tiles - a;
    a++;
  }
  return vec2<u32>(a, a + index - first);
}

// The first column l of row i's slots in tile pair `tiles`.
fn first_column(tiles: vec2<u32>, i: u32) -> u32 {
  return select(0u, i, tiles.x == tiles.y);
}
