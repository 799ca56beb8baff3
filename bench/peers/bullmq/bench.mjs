// No-op throughput of BullMQ 5 on a local Redis.
//
//   node bench.mjs [N]          (env: N, CONCURRENCY, REDIS_URL override defaults)
//
// Phase 1 enqueues N no-op jobs with Queue.addBulk in chunks of CHUNK; phase 2 starts
// one Worker with CONCURRENCY and times until all N jobs have completed. Prints one
// JSON line on stdout; everything else goes to stderr. The queue lives under a prefix
// unique to this run and is obliterated at the end, so nothing is left in Redis.
import { createRequire } from 'node:module';
import { Queue, Worker } from 'bullmq';

const N = Number(process.argv[2] ?? process.env.N ?? 100_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CHUNK = Number(process.env.CHUNK ?? 1000);
// Unique per run: a key prefix of our own means we cannot touch anyone else's keys.
const PREFIX = process.env.PREFIX ?? `peerbench-${process.pid}-${Date.now()}`;
const QUEUE = 'noop';

const version = createRequire(import.meta.url)('bullmq/package.json').version;
const log = (...a) => console.error('[bullmq]', ...a);

// BullMQ takes ioredis options; parse the URL ourselves so any redis:// URL works.
function connectionFrom(url) {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    username: u.username || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: Number(u.pathname.replace('/', '') || 0),
    maxRetriesPerRequest: null, // required by Worker's blocking connection
  };
}
const connection = connectionFrom(REDIS_URL);

const queue = new Queue(QUEUE, { connection, prefix: PREFIX });
await queue.waitUntilReady();
log(`N=${N} concurrency=${CONCURRENCY} chunk=${CHUNK} prefix=${PREFIX} bullmq=${version}`);

try {
  // Phase 1: enqueue. removeOnComplete/removeOnFail: true is the lean setting BullMQ
  // users pick for throughput: a finished job is deleted in the same Lua script that
  // completes it, instead of being kept in the completed set (default: keep all).
  const opts = { removeOnComplete: true, removeOnFail: true };
  let t0 = performance.now();
  for (let i = 0; i < N; i += CHUNK) {
    const jobs = [];
    for (let j = i; j < Math.min(i + CHUNK, N); j++) jobs.push({ name: 'noop', data: { i: j }, opts });
    await queue.addBulk(jobs);
  }
  const enqueueS = (performance.now() - t0) / 1000;
  log(`enqueued ${N} in ${enqueueS.toFixed(2)}s`);

  // Phase 2: process. The processor returns at once; completion is counted from the
  // Worker's local 'completed' event, which fires after the job is moved to completed
  // (here: removed) in Redis, so the count is of jobs really finished.
  let done = 0;
  let failed = 0;
  let finish;
  const allDone = new Promise((r) => (finish = r));
  const worker = new Worker(QUEUE, async () => {}, {
    connection, prefix: PREFIX, concurrency: CONCURRENCY, autorun: false,
  });
  worker.on('completed', () => { if (++done + failed === N) finish(); });
  worker.on('failed', () => { if (done + ++failed === N) finish(); });
  worker.on('error', (e) => log('worker error:', e.message));
  await worker.waitUntilReady();
  t0 = performance.now();
  worker.run();
  await allDone;
  const processS = (performance.now() - t0) / 1000;
  log(`processed ${done} (failed ${failed}) in ${processS.toFixed(2)}s`);
  await worker.close();

  console.log(JSON.stringify({
    system: 'bullmq', version, n: N, concurrency: CONCURRENCY,
    enqueue_per_s: Math.round(N / enqueueS), process_per_s: Math.round(N / processS),
  }));
} finally {
  await queue.obliterate({ force: true }).catch((e) => log('obliterate:', e.message));
  await queue.close();
}
