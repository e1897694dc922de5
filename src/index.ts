// webgpu-train: the public API. Demos and applications import from here only.
// The declarations use WebGPU's types (GPUDevice, GPU...): kept in the emitted index.d.ts
// (preserve) so that a consumer gets them from the @webgpu/types dependency without a `types` setting.
/// <reference types="@webgpu/types" preserve="true" />
export { Engine, type DispatchRecord, type DispatchSpec, type EngineOptions } from './engine/engine.js';
export { Tensor, type GradientFn, type Shape } from './engine/tensor.js';
export { ALIGNMENT, Parameter, ParameterStore, type Slot } from './engine/parameters.js';
export { backward, gradients } from './engine/autograd.js';
export { noGrad } from './engine/graph.js';
export * from './engine/ops/index.js';
export { Module, type AnyModule } from './engine/module.js';
export { MultiHead, Sequential, type TrunkOutput } from './engine/containers.js';
export { Activation, Dense, Dropout, Flatten, GELU, LeakyReLU, ReLU, Sigmoid, Tanh, type DenseOptions } from './engine/layers.js';
export { AvgPool2d, Conv2d, GlobalAvgPool, MaxPool2d, Reshape, type Conv2dLayerOptions } from './engine/layers.js';
export { BatchNorm, Embedding, LayerNorm, TiedEmbedding, type BatchNormLayerOptions, type EmbeddingOptions, type TiedEmbeddingOptions } from './engine/layers.js';
export { GRU, LSTM, Recurrent, type LSTMOptions, type RecurrentOptions, type RecurrentOutput, type RecurrentState } from './engine/recurrent.js';
export { replicate, Replicas } from './engine/replicas.js';
export { Adam, AdamW, Optimizer, SGD, type AdamOptions, type Group, type OptimizerOptions, type OptimizerParams, type ParamGroup, type SGDOptions } from './engine/optim.js';
export { cosineDecay, stepDecay, type Schedule } from './engine/schedule.js';
export { dirichletGenerator, gammaGenerator, normalGenerator, permutation, randomNormal, randomUniform, shuffleInPlace, uniformGenerator } from './engine/random.js';
export type { MemoryInfo } from './engine/memory.js';
export { formatProfile, type Profile, type ProfileMethod, type ProfileRow } from './engine/profiler.js';
export { autotune, describeMatmul, matmulCandidates, tuneMatmul, type TuningResult } from './engine/autotune.js';
export { DEFAULT_MATMUL, MATMUL_VARIANTS, matmulChoice, matmulTuning, type MatmulChoice, type MatmulVariant } from './engine/ops/matmul.js';
export { KERNEL_NAMES, kernel } from './engine/kernels.js';
export { Kernel, type Constants } from './engine/kernel.js';
export { decodeSafetensors, decodeTypedSafetensors, encodeSafetensors, type NamedArray, type SafetensorsDtype, type TensorData } from './engine/io/safetensors.js';
export { loadWeights, saveWeights } from './engine/io/weights.js';
export { architectureDifferences, architectureOf, buildModel, loadPretrained, readPretrainedInfo, savePretrained, type LayerSpec, type PretrainedInfo } from './engine/io/pretrained.js';
export { loadTrainingState, saveTrainingState, type LoopPosition, type TrainingParts } from './engine/io/checkpoint.js';
export { gunzip, parseIdx, parseIdxMaybeGzip, type IdxArray } from './engine/io/idx.js';
export { FASHION_MNIST_CLASSES, loadFashionMnist, type ImageSet } from './engine/io/fashion-mnist.js';
export { loadMnistDigits, MNIST_DIGIT_CLASSES } from './engine/io/mnist.js';
export {
  evaluate,
  fit,
  oneHot,
  outputs,
  takeRows,
  train,
  type Batch,
  type ClassificationData,
  type Dataset,
  type FitOptions,
  type FitResult,
  type LossFn,
  type Progress,
  type StepContext,
  type StepOutput,
  type TrainOptions,
  type TrainResult,
} from './paradigms/train.js';
export { imageAugmentation, shiftImage, type Augment, type ImageAugmentationOptions } from './paradigms/augment.js';
export { extractFeatures, fitHead, transfer, type HeadFitOptions, type TransferModel, type TransferOptions } from './paradigms/transfer.js';
export { discriminativeGroups, finetune, GradualUnfreezing, layerGroups, selectGroups, type FinetuneOptions } from './paradigms/finetune.js';
export { distill, type DistillOptions } from './paradigms/distill.js';
export { classSplit, type ClassSplit } from './paradigms/data.js';
export { aggregateRuns, efficiencyCurve, spread, stepBudget, type EfficiencyOptions, type EfficiencyPoint, type EfficiencyRun, type LabelsPerClass, type MethodRun, type Spread } from './paradigms/efficiency.js';
export { dropLabels, multiFashion, multiFashionMnist, takeMultiTaskRows, taskCounts, type MultiTaskData, type TaskLabels } from './paradigms/multitask/data.js';
export { CrossStitch, CrossStitchUnit, MMoE, type CrossStitchOptions, type MMoEOptions } from './paradigms/multitask/architectures.js';
export { applyLoRA, LoRAConv2d, LoRADense, LoRALayer, mergeLoRA, saveAdapter, type LoRAOptions } from './paradigms/lora.js';
export {
  CAGrad,
  DynamicWeightAverage,
  EqualWeighting,
  FAMO,
  GradientWeighting,
  GradNorm,
  LossWeighting,
  makeWeighting,
  MGDA,
  PCGrad,
  RandomLossWeighting,
  TaskVector,
  UncertaintyWeighting,
  Weighting,
  WEIGHTINGS,
  type GradientSpace,
  type LossStep,
  type WeightingName,
} from './paradigms/multitask/weighting.js';
export { multiTaskDataset, taskLosses, trainMultiTask, type MultiTaskBatch, type MultiTaskOptions, type MultiTaskResult } from './paradigms/multitask/train.js';
export { deltaM, evaluateMultiTask, type TaskScore } from './paradigms/multitask/evaluate.js';
export { cagradCoefficients, cosines, dwaWeights, gradNormStep, gramNorms, meanPairCosine, minNormCoefficients, pcgradCoefficients, rlwWeights, type MgdaNormalization } from './paradigms/multitask/solvers.js';
export { clientData, dirichletPartition, iidPartition, labelHistogram, naturalPartition, shardPartition, type DirichletOptions, type Partition, type ShardOptions } from './paradigms/federated/partition.js';
export { DEFAULT_ORDERS, epsilonFromRdp, RdpAccountant, rdpSampledGaussian, type PrivacySpent, type RdpAccountantState, type RdpConversion } from './paradigms/federated/accountant.js';
export { FedAdagrad, FedAdam, FedAvg, FedAvgM, FedMedian, FedTrimmedAvg, FedYogi, Krum, Strategy, type FedAvgMOptions, type FedOptOptions, type StrategyState } from './paradigms/federated/strategies.js';
export { acceptedStack, checkUpdates, DEFAULT_NORM_FACTOR, type CheckOptions, type CheckResult } from './paradigms/federated/checks.js';
export { adaptiveClipFraction, adaptiveSumNoiseMultiplier, DPFedAvg, localDpEpsilon, privatizeLocally, type AdaptiveClipOptions, type DistributedDpSettings, type DPFedAvgOptions, type DPRoundRecord, type LocalDpOptions } from './paradigms/federated/privacy.js';
export { UpdateCompressor, type EncodedUpdate, type UpdateCompressorOptions } from './paradigms/federated/compression.js';
export { checkLayout, checkRoundConfig, disposeUpdate, fnv1a, gatherWeights, scatterWeights, trainableLayout, type ClientEvaluation, type ClientMetrics, type ClientUpdate, type GlobalModel, type PayloadEntry, type PayloadLayout, type RoundConfig } from './paradigms/federated/protocol.js';
export { FederatedClient, type ClientData, type ClientOptions, type TokenData } from './paradigms/federated/client.js';
export { FederatedServer, type RoundReport, type SecureSum, type ServerOptions, type ServerState } from './paradigms/federated/server.js';
export { trainBatched } from './paradigms/federated/batched.js';
export { simulate, type RoundRecord, type SimulationMode, type SimulationOptions } from './paradigms/federated/simulation.js';
export { ATTACKS, poisonDelta, type Attack } from './paradigms/federated/attacks.js';
export { decodeFrame, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HEADER_BYTES, encodeFrame, flatFromNamed, namedFromFlat, WIRE_FORMAT, WIRE_VERSION, WIRE_VERSIONS, type ByeMessage, type DecodeOptions, type ErrorMessage, type EvaluateMessage, type EvaluationMessage, type HelloMessage, type NamedTensors, type RoundMessage, type SecAggFields, type SecAggMessage, type UpdateDelta, type UpdateMessage, type WelcomeMessage, type WireMessage, type WireMessageType } from './paradigms/federated/wire.js';
export { CLIENT_CAPABILITIES, keepConnected, modelVersion, packSecAgg, personaliseAfterFederation, RemoteClient, secAggFields, unpackSecAgg, type RemoteClientOptions, type RemoteClientStats, type RoundSecAgg, type SocketLike } from './paradigms/federated/remote.js';
export {
  distributedNoiseStddev,
  messageBytes,
  SecAggClient,
  secAggOverhead,
  SecAggServer,
  secAggSettings,
  type AdvertiseKeysMessage,
  type ClientId,
  type HeldShare,
  type KeyListMessage,
  type MaskedInputMessage,
  type MaskInputOptions,
  type PublicKeys,
  type RoundCost,
  type SecAggClientMessage,
  type SecAggConfig,
  type SecAggCosts,
  type SecAggOverhead,
  type SecAggResult,
  type SecAggRound,
  type SecAggSettings,
  type SharesForClientMessage,
  type ShareKeysMessage,
  type UnmaskingMessage,
  type UnmaskingRequest,
} from './paradigms/federated/secagg.js';
export { recoverSecret, shareSecret, SHARE_BYTES, type Share } from './paradigms/federated/shamir.js';
export { expandSeed } from './paradigms/federated/prg.js';
export { BOS, CharTokenizer, EOS, keyboardWords, normaliseChars, NUM, scanWords, tokenizerFromJSON, UNK, WordTokenizer, type EncodeOptions, type ScannedToken, type Tokenizer, type TokenizerJSON, type VocabularyOptions } from './paradigms/keyboard/tokenizer.js';
export { FALLBACK_DISCOUNTS, KneserNeyTrigram, modifiedDiscounts, type Discounts, type KneserNeyOptions, type OrderDiscounts } from './paradigms/keyboard/ngram.js';
export { nextWordReport, NextWordTally, topKIds, type NextWordMetrics, type Scorer } from './paradigms/keyboard/metrics.js';
export { keyboardUsers, loadSotu, SOTU_INDEX, SOTU_TRAIN_FRACTION, splitUserText, type KeyboardUser, type SotuAddress, type SotuUser } from './paradigms/keyboard/data.js';
export { KeyboardModel, type KeyboardModelOptions } from './paradigms/keyboard/model.js';
export { batchify, evaluateLanguageModel, tokenStreams, trainLanguageModel, type LanguageModelOptions, type LanguageModelResult } from './paradigms/keyboard/train.js';
