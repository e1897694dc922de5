export function runFederatedKeyboard(options?: { query?: Record<string, string | number>; timeoutMs?: number }): Promise<{
  central_top1: number;
  federated_top1: number;
  ngram_top1: number;
  personalised_top1: number;
  global_top1_on_users: number;
  rounds: number;
  secagg_overhead_bytes: number;
  secagg_overhead_time: number;
  dropouts_survived: number;
  server_restarts_survived: number;
  clients_killed: number;
  frames_checked: number;
  frame_types: Record<string, number>;
  text_in_frames: number;
  train_losses: number[];
  users: Record<string, { global_top1: number; personalised_top1: number; rounds: number; bytes_sent: number }>;
  [extra: string]: unknown;
}>;
