// Batched forward of K replicas: one kernel per layer computes the layer for all K at once
// (replicaLinear reads each replica's weights from their [K, P] block), instead of K forwards.
// Activations are [K, B, features]; elementwise layers apply to all K as one tensor. Covers the
// layers that need nothing per replica but their weights: Dense, Activation, Flatten, Dropout.
import { Sequential } from './containers.js';
import { Activation, Dense, Dropout, Flatten } from './layers.js';
import type { AnyModule } from './module.js';
import { dropout, replicaLinear, reshape, unary, type FusedActivation } from './ops/index.js';
import type { Parameter } from './parameters.js';
import { shapeString, type Tensor } from './tensor.js';

const SUPPORTED = 'a Sequential of Dense, Activation, Flatten and Dropout layers';

/**
 * `model` (replica 0's, laid out as all replicas) applied to x [K, B, ...] with each replica's
 * weights: `rowsOf(p)` gives the K replicas' parameters for replica 0's parameter p. A Dense
 * followed by an activation its kernel can apply is one kernel, as in Sequential.forward.
 */
export function replicaForward(model: AnyModule, x: Tensor, rowsOf: (p: Parameter) => Parameter[], path = ''): Tensor {
  if (!(model instanceof Sequential)) {
    throw new Error(`Replicas.forward: ${path || 'the model'} is a ${model.constructor.name}; batched forward supports only ${SUPPORTED}`);
  }
  const layers = model.children();
  const K = x.shape[0]!;
  let y = x;
  for (let i = 0; i < layers.length; i++) {
    const [name, layer] = layers[i]!;
    const where = `${path}${name}`;
    if (layer instanceof Dense) {
      if (y.rank !== 3 || y.shape[2] !== layer.inFeatures) {
        throw new Error(`Replicas.forward: layer ${where} Dense(${layer.inFeatures} -> ${layer.outFeatures}) gets ${shapeString(y.shape)}, expected [${K}, batch, ${layer.inFeatures}]`);
      }
      const next = layers[i + 1]?.[1];
      const fused = next instanceof Activation && layer.canFuse(next) ? next : null;
      y = replicaLinear(y, rowsOf(layer.weight), layer.bias ? rowsOf(layer.bias) : null, fused ? (fused.op as FusedActivation) : null, fused?.alpha);
      if (fused) i++;
    } else if (layer instanceof Activation) y = unary(layer.op, y, layer.alpha);
    else if (layer instanceof Flatten) y = reshape(y, [K, y.shape[1] ?? 1, -1]);
    else if (layer instanceof Dropout) y = layer.training && layer.rate > 0 ? dropout(y, layer.rate) : y;
    else if (layer instanceof Sequential) y = replicaForward(layer, y, rowsOf, `${where}.`);
    else throw new Error(`Replicas.forward: layer ${where} is a ${layer.constructor.name}; batched forward supports only ${SUPPORTED}`);
  }
  return y;
}
