// Prometheus metrics of the process: one registry, named instruments, served by GET /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: 'fqtok_' });

export const httpRequests = new Counter({
  name: 'fqtok_http_requests_total',
  help: 'HTTP requests by route, method and status',
  labelNames: ['route', 'method', 'status'] as const,
  registers: [metricsRegistry],
});

export const httpDuration = new Histogram({
  name: 'fqtok_http_request_duration_seconds',
  help: 'HTTP request latency by route, method and status',
  labelNames: ['route', 'method', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [metricsRegistry],
});

export const batchSize = new Histogram({
  name: 'fqtok_batch_size',
  help: 'Images per inference run',
  labelNames: ['model', 'operation'] as const,
  buckets: [1, 2, 4, 8, 16, 32, 64],
  registers: [metricsRegistry],
});

export const inferenceDuration = new Histogram({
  name: 'fqtok_inference_duration_seconds',
  help: 'Time of one inference run',
  labelNames: ['model', 'operation'] as const,
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [metricsRegistry],
});

export const queueDepth = new Gauge({
  name: 'fqtok_queue_depth',
  help: 'Images waiting for an inference run',
  labelNames: ['model', 'operation'] as const,
  registers: [metricsRegistry],
});

export const imagesProcessed = new Counter({
  name: 'fqtok_images_processed_total',
  help: 'Images encoded or decoded',
  labelNames: ['model', 'operation'] as const,
  registers: [metricsRegistry],
});

export const bodyBytesInFlight = new Gauge({
  name: 'fqtok_request_body_bytes_in_flight',
  help: 'Bytes of request bodies being received or held by their requests (at most FQ_MAX_BODY_BYTES_IN_FLIGHT)',
  registers: [metricsRegistry],
});

export const droppedRequests = new Counter({
  name: 'fqtok_dropped_requests_total',
  help: 'Queued work dropped because its caller went away or timed out',
  labelNames: ['model', 'operation', 'reason'] as const,
  registers: [metricsRegistry],
});

export const modelInfo = new Gauge({
  name: 'fqtok_model_info',
  help: 'Served model versions (value 1), the execution provider each really runs on and the one configured first (they differ after a fallback)',
  labelNames: ['model', 'version', 'execution_provider', 'requested_execution_provider'] as const,
  registers: [metricsRegistry],
});

export const imagesDecoded = new Counter({
  name: 'fqtok_images_decoded_total',
  help: 'Images whose decode and crop started (refused and abandoned requests cost none)',
  registers: [metricsRegistry],
});

export const decodedPixelsInFlight = new Gauge({
  name: 'fqtok_decoded_pixels_in_flight',
  help: 'Pixels of the images being decoded and cropped now (each its largest stage), bounded by FQ_MAX_DECODE_PIXELS_IN_FLIGHT',
  registers: [metricsRegistry],
});

export const decodeWaiting = new Gauge({
  name: 'fqtok_decode_waiting',
  help: 'Images of admitted requests waiting for a preprocessing thread or for room in the decoded-pixel budget',
  registers: [metricsRegistry],
});

// ---- per replica, for a horizontal autoscaler and a load balancer

export const viewsInFlight = new Gauge({
  name: 'fqtok_views_in_flight',
  help: 'Image views (grid sets for decode) of admitted requests not yet answered: being prepared, waiting to run or running. Summed per replica, the autoscaling signal',
  labelNames: ['model', 'operation'] as const,
  registers: [metricsRegistry],
});

export const admissionRefusals = new Counter({
  name: 'fqtok_admission_refusals_total',
  help: 'Requests refused at admission: overloaded (503, queue full now), too_large (413, could never fit), unavailable (503, shutting down)',
  labelNames: ['model', 'operation', 'reason'] as const,
  registers: [metricsRegistry],
});

export const operationDuration = new Histogram({
  name: 'fqtok_model_request_duration_seconds',
  help: "A request's work on one model, from admission to its end (preprocessing, queueing and inference), per model and operation",
  labelNames: ['model', 'operation'] as const,
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [metricsRegistry],
});
