//! OpenTelemetry traces of `portcullis serve`, following the MCP semantic conventions.
//!
//! Each client request handled over HTTP gets one `SERVER` span named
//! `{mcp.method.name} {target}` (the tool or prompt name when there is one), with
//! `mcp.method.name`, `mcp.session.id`, `mcp.protocol.version`, `jsonrpc.request.id`,
//! `gen_ai.tool.name` / `gen_ai.prompt.name` / `mcp.resource.uri`, `network.transport` and, on
//! failure, `error.type`. Trace context travels in the request's `params._meta` (W3C
//! `traceparent` / `tracestate`), both ways: a client's `traceparent` parents the gateway span,
//! and the request forwarded to the server carries the gateway span's own.
//!
//! Configured the standard way: on only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not `true`,
//! `OTEL_TRACES_EXPORTER` not `none`); exported as OTLP http/protobuf in batches.
//!
//! Telemetry never holds a call back: spans go to a bounded in-memory queue that drops when
//! full, the export runs on its own thread with a timeout, and an exporter that is down costs
//! only log lines. `mcp.session.id` is the audit session id (`h-...`), not the `Mcp-Session-Id`
//! header, which is a bearer secret; arguments are never recorded.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use portcullis_mcp::{Limits, Message, Parsed, parse_message};
use serde_json::{Map, Value};

use crate::session::shorten;

/// The `_meta` keys of W3C trace context in MCP requests.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// How long one export may take, unless `OTEL_EXPORTER_OTLP_TIMEOUT` says otherwise.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutting down may take to flush the last spans.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest collector response body read; OTLP responses are a few bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The trace pipeline: the provider (batching, export) and the gateway's tracer.
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Whether the environment asks for traces.
fn wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let none = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim() == "none");
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !disabled
        && !none
}

impl Telemetry {
    /// The trace pipeline the environment asks for, or `None`. A configuration that does not
    /// work is logged and leaves tracing off: telemetry never stops the gateway from serving.
    pub(crate) fn from_env(runtime: tokio::runtime::Handle) -> Option<Self> {
        if !wanted() {
            return None;
        }
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Ok(protocol) = std::env::var(name)
                && protocol.trim() != "http/protobuf"
            {
                tracing::warn!(
                    "{name}=`{}` is not supported by this build; traces are sent as http/protobuf",
                    shorten(&protocol)
                );
            }
        }
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(EXPORT_TIMEOUT)
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the OTLP HTTP client; tracing is off");
                return None;
            }
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(OtlpHttp { client, runtime })
            .build();
        let exporter = match exporter {
            Ok(exporter) => exporter,
            Err(error) => {
                tracing::error!(%error, "cannot configure the OTLP exporter from OTEL_EXPORTER_OTLP_*; tracing is off");
                return None;
            }
        };
        let mut resource = opentelemetry_sdk::Resource::builder();
        let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
            || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
        if !named {
            resource = resource.with_service_name("portcullis");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer_with_scope(
            &provider,
            opentelemetry::InstrumentationScope::builder("portcullis")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        tracing::info!("OpenTelemetry tracing on: spans are exported over OTLP http/protobuf");
        Some(Self { provider, tracer })
    }

    /// Flushes what is queued and stops the exporter, bounded by [`SHUTDOWN_TIMEOUT`]. Runs on
    /// a blocking thread: the flush itself needs the runtime.
    pub(crate) async fn shutdown(&self) {
        let provider = self.provider.clone();
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT));
        match tokio::time::timeout(SHUTDOWN_TIMEOUT.saturating_mul(2), done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the last spans were not exported"),
            Ok(Err(error)) => tracing::warn!(%error, "the trace exporter did not stop cleanly"),
            Err(_) => tracing::warn!("the trace exporter did not stop in time"),
        }
    }

    /// Starts the span of one client request. `session` is the audit session id and
    /// `protocol` the negotiated version, when known.
    pub(crate) fn start(
        &self,
        parsed: &Parsed,
        session: &str,
        protocol: Option<&str>,
    ) -> RequestSpan {
        let Message::Request { id, method, params } = parsed.message() else {
            return RequestSpan { cx: None };
        };
        let propagator = TraceContextPropagator::new();
        let meta = params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(Value::as_object);
        // A malformed or absent traceparent gives an empty context: the span is a new root.
        let parent = meta.map_or_else(Context::new, |meta| {
            propagator.extract_with_context(&Context::new(), &MetaCarrier(meta))
        });
        let method = shorten(method);
        let param = |key: &str| {
            params
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .map(shorten)
        };
        let mut attributes = vec![
            KeyValue::new("mcp.method.name", method.clone()),
            KeyValue::new("mcp.session.id", session.to_owned()),
            KeyValue::new("jsonrpc.request.id", shorten(&id.to_string())),
            KeyValue::new("network.transport", "tcp"),
            KeyValue::new("network.protocol.name", "http"),
        ];
        if let Some(protocol) = protocol {
            attributes.push(KeyValue::new("mcp.protocol.version", shorten(protocol)));
        }
        let target = match method.as_str() {
            "tools/call" => param("name").inspect(|name| {
                attributes.push(KeyValue::new("gen_ai.tool.name", name.clone()));
                attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
            }),
            "prompts/get" => param("name").inspect(|name| {
                attributes.push(KeyValue::new("gen_ai.prompt.name", name.clone()));
            }),
            "resources/read" => {
                // The URI is an attribute, not part of the name (unbounded cardinality).
                if let Some(uri) = param("uri") {
                    attributes.push(KeyValue::new("mcp.resource.uri", uri));
                }
                None
            }
            _ => None,
        };
        let name = match target {
            Some(target) => format!("{method} {target}"),
            None => method,
        };
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        RequestSpan {
            cx: Some(parent.with_span(span)),
        }
    }
}

/// The span of one client request; ended by [`RequestSpan::finish`] (or when dropped).
pub(crate) struct RequestSpan {
    cx: Option<Context>,
}

impl RequestSpan {
    /// `parsed` with the gateway span's `traceparent` (and `tracestate`) in `params._meta`,
    /// replacing the client's, re-parsed with the same strict framing so that what is forwarded
    /// is still the re-serialization of a parsed message. `None` when there is nothing to add or
    /// it cannot be added (a `_meta` that is not an object, a message at the size limit): the
    /// request then goes on unchanged. Nothing the policy evaluates or an approval binds to
    /// (name, arguments) is touched.
    pub(crate) fn inject(&self, parsed: &Parsed) -> Option<Parsed> {
        let cx = self.cx.as_ref()?;
        let mut value = parsed.value().clone();
        let object = value.as_object_mut()?;
        let params = object
            .entry("params")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()?;
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()?;
        meta.remove(TRACEPARENT);
        meta.remove(TRACESTATE);
        TraceContextPropagator::new().inject_context(cx, &mut MetaInjector(meta));
        let bytes = serde_json::to_vec(&value).ok()?;
        match parse_message(&bytes, &Limits::default()) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                tracing::debug!(%error, "forwarding a request without the gateway's traceparent");
                None
            }
        }
    }

    /// Records how the request ended (`error.type` for JSON-RPC errors and tool errors, the
    /// gateway's rule and decision id for refusals) and ends the span.
    pub(crate) fn finish(self, answer: Option<&Value>) {
        let Some(cx) = self.cx else {
            return;
        };
        let span = cx.span();
        if let Some(answer) = answer {
            if let Some(code) = answer
                .get("error")
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64)
            {
                span.set_attribute(KeyValue::new("error.type", code.to_string()));
                span.set_attribute(KeyValue::new("rpc.response.status_code", code.to_string()));
                span.set_status(Status::error("JSON-RPC error"));
            } else if answer
                .get("result")
                .and_then(|r| r.get("isError"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                span.set_attribute(KeyValue::new("error.type", "tool_error"));
                span.set_status(Status::error("tool error"));
            }
            let denial = answer
                .get("result")
                .and_then(|r| r.get("_meta"))
                .or_else(|| answer.get("error").and_then(|e| e.get("data")))
                .and_then(|m| m.get(crate::denial::META_KEY));
            if let Some(denial) = denial {
                for (key, field) in [
                    ("portcullis.rule", "rule"),
                    ("portcullis.decision_id", "decision_id"),
                    ("portcullis.denial.code", "code"),
                ] {
                    if let Some(text) = denial.get(field).and_then(Value::as_str) {
                        span.set_attribute(KeyValue::new(key, shorten(text)));
                    }
                }
            }
        }
        span.end();
    }
}

/// Reads W3C trace context from a request's `_meta` (string values only).
struct MetaCarrier<'a>(&'a Map<String, Value>);

impl Extractor for MetaCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key).and_then(Value::as_str)?;
        (key != TRACEPARENT || is_w3c_traceparent(value)).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Whether `value` is a version-00 W3C `traceparent` in exactly its form: `00-`, 32 and 16
/// lower-case hex digits, 2 hex flags. The propagator alone is laxer (it takes a short span
/// id); a value a client made up is checked before it can name a parent.
fn is_w3c_traceparent(value: &str) -> bool {
    let fields: Vec<&str> = value.split('-').collect();
    let hex = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    matches!(fields.as_slice(), [version, trace, span, flags]
        if *version == "00" && hex(trace, 32) && hex(span, 16) && hex(flags, 2))
}

/// Writes W3C trace context into a request's `_meta`.
struct MetaInjector<'a>(&'a mut Map<String, Value>);

impl Injector for MetaInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

/// The OTLP exporter's HTTP client: the gateway's reqwest client, run on the gateway's tokio
/// runtime (the batch exporter drives it from its own thread). No redirects, no proxy, a
/// timeout, and a bounded response body.
#[derive(Debug)]
struct OtlpHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttp {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let mut response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = task.await??;
        let mut response = http::Response::new(Bytes::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn extract(meta: &Value) -> SpanContext {
        let Value::Object(map) = meta else {
            return SpanContext::empty_context();
        };
        TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &MetaCarrier(map))
            .span()
            .span_context()
            .clone()
    }

    #[test]
    fn a_valid_traceparent_in_meta_is_the_parent() {
        let cx = extract(&serde_json::json!({
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "vendor=x"
        }));
        assert!(cx.is_valid());
        assert!(cx.is_remote());
        assert_eq!(
            cx.trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap_or(TraceId::INVALID)
        );
        assert_eq!(
            cx.span_id(),
            SpanId::from_hex("b7ad6b7169203331").unwrap_or(SpanId::INVALID)
        );
        assert_eq!(cx.trace_flags(), TraceFlags::SAMPLED);
        assert_eq!(cx.trace_state().header(), "vendor=x");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            serde_json::json!({"traceparent": "garbage"}),
            serde_json::json!({"traceparent": 42}),
            serde_json::json!({"traceparent": ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]}),
            serde_json::json!({"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"}),
            serde_json::json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"}),
            serde_json::json!({"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
            serde_json::json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01"}),
            serde_json::json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"}),
        ] {
            assert!(!extract(&bad).is_valid(), "{bad}");
        }
        // A bad tracestate is dropped; the traceparent still parents the span.
        let cx = extract(&serde_json::json!({
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "not a valid=list=entry"
        }));
        assert!(cx.is_valid());
        assert_eq!(cx.trace_state(), &TraceState::default());
    }
}
