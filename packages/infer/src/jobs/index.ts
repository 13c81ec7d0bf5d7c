// `@bmc/infer/jobs`: detection on workers through BullMQ/Redis. A subpath of its own so that
// importing `@bmc/infer` does not load BullMQ and ioredis.
export { checkRedis, JOB_SETTINGS, queueName, redisOptions, safeUrl } from './connection.js';
export { type JobRoutesOptions, registerJobRoutes } from './routes.js';
export {
  type InputProgress,
  QueueDetection,
  type QueueDetectionOptions,
  queueDetection,
} from './submit.js';
export {
  fileIdentity,
  finishedTiles,
  modelHash,
  readTile,
  resultId,
  tileFile,
  writeTile,
} from './tile-store.js';
export { type DetectJob, startWorker, type TileWorker, type WorkerOptions } from './worker.js';
