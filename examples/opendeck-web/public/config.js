// Where this page sends telemetry and calls its API. The dev stack's collector takes OTLP/HTTP on
// localhost:4318 from the origins in corsAllowedOrigins (this page on http://localhost:4200 is one).
// For prod use the stack's browser route: https://<domainName>/browser/v1/traces (no token).
window.opendeckConfig = {
  serviceName: 'opendeck-web',
  tracesUrl: 'http://localhost:4318/v1/traces',
  apiUrl: 'http://localhost:8000',
};
