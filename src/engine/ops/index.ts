export { add, exp, gelu, leakyRelu, log, mul, relu, scale, sigmoid, square, sub, tanh, unary, UNARY_OPS, type UnaryOp } from './elementwise.js';
export { addBias, matmul, type MatmulOptions } from './matmul.js';
export { mean, sum } from './reduce.js';
export { mse, softmaxCrossEntropy, softmaxCrossEntropyRows } from './loss.js';
export { concat, reshape, slice } from './shape.js';
export { dropout } from './dropout.js';
