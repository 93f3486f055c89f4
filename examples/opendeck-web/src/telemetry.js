// OpenTelemetry for the OpenDeck web frontend: document load, fetch, XHR and user interactions as
// spans, uncaught errors as error spans, all exported over OTLP/HTTP (JSON) to the collector.
// The W3C trace context (traceparent, tracestate) goes along with every API call, so the backend's
// spans join the browser's trace.
import { trace, SpanStatusCode } from '@opentelemetry/api';
import { ZoneContextManager } from '@opentelemetry/context-zone';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { DocumentLoadInstrumentation } from '@opentelemetry/instrumentation-document-load';
import { FetchInstrumentation } from '@opentelemetry/instrumentation-fetch';
import { UserInteractionInstrumentation } from '@opentelemetry/instrumentation-user-interaction';
import { XMLHttpRequestInstrumentation } from '@opentelemetry/instrumentation-xml-http-request';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, WebTracerProvider } from '@opentelemetry/sdk-trace-web';

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Counts spans that have started and not ended. Fetch and XHR spans end a moment after their
// response (the instrumentations wait for the browser's resource timing), so a flush right after
// a call would miss them; flush() waits for them first.
class OpenSpans {
  constructor() {
    this.open = 0;
    this.waiting = [];
  }
  onStart() {
    this.open += 1;
  }
  onEnd() {
    this.open -= 1;
    if (this.open === 0) this.waiting.splice(0).forEach((resolve) => resolve());
  }
  settled(timeoutMillis) {
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      setTimeout(resolve, timeoutMillis);
    });
  }
  forceFlush() {
    return Promise.resolve();
  }
  shutdown() {
    return Promise.resolve();
  }
}

/**
 * config: { serviceName, tracesUrl (the collector's OTLP/HTTP traces URL), apiUrl (the backend's
 * origin: trace headers go only there), resourceAttributes (optional) }.
 */
export function setupTelemetry(config) {
  const openSpans = new OpenSpans();
  const provider = new WebTracerProvider({
    resource: resourceFromAttributes({
      'service.name': config.serviceName,
      ...(config.resourceAttributes || {}),
    }),
    // openSpans first: it sees a span end before the batch processor takes it.
    spanProcessors: [
      openSpans,
      new BatchSpanProcessor(new OTLPTraceExporter({ url: config.tracesUrl }), {
        scheduledDelayMillis: 1000,
        // A hundred spans per request stay well under the prod browser route's 512 KiB body limit.
        maxExportBatchSize: 100,
      }),
    ],
  });
  // Zones carry the click's context into the fetch or XHR it starts, so they share one trace.
  provider.register({ contextManager: new ZoneContextManager() });

  const apiOrigin = new RegExp('^' + escapeRegExp(new URL(config.apiUrl).origin) + '/');
  const network = { propagateTraceHeaderCorsUrls: [apiOrigin], ignoreUrls: [config.tracesUrl] };
  registerInstrumentations({
    instrumentations: [
      new DocumentLoadInstrumentation(),
      new UserInteractionInstrumentation({ eventNames: ['click', 'submit'] }),
      new FetchInstrumentation(network),
      new XMLHttpRequestInstrumentation(network),
    ],
  });

  const tracer = trace.getTracer('opendeck-web');
  function recordError(error, kind) {
    const span = tracer.startSpan(kind, { attributes: { 'exception.type': error?.name || 'Error' } });
    span.recordException(error instanceof Error ? error : { message: String(error) });
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error?.message || error) });
    span.end();
  }
  window.addEventListener('error', (event) => recordError(event.error || event.message, 'uncaught error'));
  window.addEventListener('unhandledrejection', (event) => recordError(event.reason, 'unhandled rejection'));

  // Export now what the SDK holds, once the spans in progress have ended (at most 5 s).
  return { flush: () => openSpans.settled(5000).then(() => provider.forceFlush()) };
}
