//! Logs and metrics: a `tracing` subscriber (pretty or JSON; span fields written by
//! [`PlainFields`] and [`JsonSpanFields`]) and the process-wide Prometheus recorder that
//! `/metrics` renders.

use crate::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, JsonFields, Writer};

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `filter`. A second call (tests
/// building several apps in one process) keeps the first subscriber.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogOut)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match format {
        LogFormat::Json => builder.json().fmt_fields(JsonSpanFields).try_init(),
        LogFormat::Pretty => builder.fmt_fields(PlainFields).try_init(),
    };
}

/// The log's writer: standard output, where a line that cannot be written (the log's disk
/// full, a closed pipe) is dropped and counted in `emporium_log_writes_failed_total`. The
/// default writer reports such a failure on standard error with `eprintln!`, which panics
/// when standard error fails too (it usually shares the full disk): every request that
/// logged then died in its handler.
struct LogOut;

impl tracing_subscriber::fmt::MakeWriter<'_> for LogOut {
    type Writer = LogLine;

    fn make_writer(&self) -> LogLine {
        LogLine(std::io::stdout())
    }
}

/// One line of the log on its way to standard output: see [`LogOut`].
struct LogLine(std::io::Stdout);

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => {
                metrics::counter!("emporium_log_writes_failed_total").increment(1);
                Ok(buf.len())
            }
            written => written,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// The fields of the pretty log, written exactly as tracing-subscriber's `DefaultFields` writes
/// them, but a text field (`route="/api/v1/..."`) without the formatting machinery when the
/// log has no colours and the text needs no escaping. The log formats a span's fields when the
/// span opens, logged in or not: the request span's three fields cost 7,000 instructions a
/// request through `DefaultFields` (callgrind), a quarter of a `GET /healthz`. Everything else
/// (messages, errors with their sources, numbers, `%`/`?` values, colours) goes to
/// `DefaultFields`' own visitor.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> PlainVisitor<'a> {
        PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
            pending: [0; PENDING],
            pending_len: 0,
        }
    }
}

/// Bytes of plain fields a visitor gathers before it writes them to the log.
const PENDING: usize = 256;

/// [`PlainFields`]' visitor: one field after another, a space between two.
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: std::fmt::Result,
    /// Plain fields not written yet: the log's string then grows once for all of them, not
    /// once for each of their parts (the reallocations cost more than the writing).
    pending: [u8; PENDING],
    pending_len: usize,
}

impl PlainVisitor<'_> {
    /// What `DefaultFields` writes for the field.
    fn default_way(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        // `log.` fields are the `log` crate's metadata, already in the line: none is written.
        if field.name().starts_with("log.") {
            return;
        }
        self.write_pending();
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }

    /// Adds `text` to the fields not written yet (written at once if it does not fit).
    fn push(&mut self, text: &str) {
        if self.pending_len + text.len() > PENDING {
            self.write_pending();
            if text.len() > PENDING {
                self.result = self.result.and_then(|()| self.writer.write_str(text));
                return;
            }
        }
        self.pending[self.pending_len..self.pending_len + text.len()]
            .copy_from_slice(text.as_bytes());
        self.pending_len += text.len();
    }

    fn write_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending_len);
        if pending > 0 && self.result.is_ok() {
            // Whole `&str`s only were pushed, so this is text.
            self.result = match std::str::from_utf8(&self.pending[..pending]) {
                Ok(text) => self.writer.write_str(text),
                Err(_) => Err(std::fmt::Error),
            };
        }
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        let plain = name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
            && !self.writer.has_ansi_escapes()
            // `{:?}` of such text is the text in quotes.
            && value.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        if !plain {
            return self.default_way(field, |v| v.record_str(field, value));
        }
        if !self.is_empty {
            self.push(" ");
        }
        self.is_empty = false;
        for part in [name, "=\"", value, "\""] {
            self.push(part);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default_way(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.default_way(field, |v| v.record_debug(field, value));
    }
}

impl VisitOutput<std::fmt::Result> for PlainVisitor<'_> {
    fn finish(mut self) -> std::fmt::Result {
        self.write_pending();
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn std::fmt::Write {
        self.write_pending();
        &mut self.writer
    }
}

/// The span fields of the JSON log, written exactly as tracing-subscriber's `JsonFields` writes
/// them (a JSON object, keys in order), without building a map of `serde_json` values when
/// every field is text that needs no escaping, a whole number or a boolean. As with
/// [`PlainFields`], the log formats a span's fields when the span opens, logged in or not: the
/// request span cost a JSON-logging server 6,300 instructions a request more than the pretty
/// log (callgrind, `GET /healthz`). Any other field (`?`/`%` values, floats, errors, bytes,
/// `r#` and `log.` names), or more than fit on the stack, and the whole span goes to
/// `JsonFields`; so do fields recorded after the span opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut flat = FlatJson::default();
        fields.record(&mut flat);
        match flat.object() {
            Some(object) => writer.write_str(object),
            None => JsonFields::new().format_fields(writer, fields),
        }
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        if current.is_empty() {
            return self.format_fields(current.as_writer(), fields);
        }
        // Merged into the object already written, as `JsonFields` merges.
        let mut json = FormattedFields::<JsonFields>::new(std::mem::take(&mut current.fields));
        let merged = JsonFields::new().add_fields(&mut json, fields);
        current.fields = json.fields;
        merged
    }
}

/// Bytes of rendered values, and of the whole object, that [`FlatJson`] keeps on the stack.
const FLAT_BYTES: usize = 384;
/// Fields that [`FlatJson`] keeps.
const FLAT_FIELDS: usize = 8;

/// [`JsonSpanFields`]' visitor: each field's value rendered as JSON into one buffer, then the
/// object written in key order. `unfit` once a field needs `JsonFields`.
struct FlatJson {
    values: [u8; FLAT_BYTES],
    values_len: usize,
    /// A field's name and where its rendered value is in `values`.
    fields: [(&'static str, u16, u16); FLAT_FIELDS],
    count: usize,
    unfit: bool,
    object: [u8; FLAT_BYTES],
}

impl Default for FlatJson {
    fn default() -> Self {
        FlatJson {
            values: [0; FLAT_BYTES],
            values_len: 0,
            fields: [("", 0, 0); FLAT_FIELDS],
            count: 0,
            unfit: false,
            object: [0; FLAT_BYTES],
        }
    }
}

/// Whether `serde_json` writes `text` as is between quotes: no control character, quote or
/// backslash (it leaves every other byte, UTF-8 included, unescaped).
fn json_plain(text: &str) -> bool {
    text.bytes().all(|b| b >= b' ' && b != b'"' && b != b'\\')
}

impl FlatJson {
    /// Keeps the field `name` with its value written as `parts` (already JSON).
    fn keep(&mut self, field: &Field, parts: &[&str]) {
        let name = field.name();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.unfit
            || self.count == FLAT_FIELDS
            || self.values_len + len > FLAT_BYTES
            || name.starts_with("r#")
            || name.starts_with("log.")
            || !json_plain(name)
        {
            self.unfit = true;
            return;
        }
        let start = self.values_len;
        for part in parts {
            self.values[self.values_len..self.values_len + part.len()]
                .copy_from_slice(part.as_bytes());
            self.values_len += part.len();
        }
        // Both fit in u16: FLAT_BYTES is below 65,536.
        self.fields[self.count] = (name, start as u16, self.values_len as u16);
        self.count += 1;
    }

    /// The object `JsonFields` would write, or `None` if a field needs it.
    fn object(&mut self) -> Option<&str> {
        if self.unfit {
            return None;
        }
        let fields = &mut self.fields[..self.count];
        // A name given twice keeps its last value, as a map does: a stable sort, then the last
        // of each run of equal names.
        fields.sort_by_key(|(name, _, _)| *name);
        let mut out = Out {
            bytes: &mut self.object,
            len: 0,
            fits: true,
        };
        out.push(b"{");
        for (i, (name, start, end)) in fields.iter().enumerate() {
            if fields.get(i + 1).is_some_and(|next| next.0 == *name) {
                continue;
            }
            if out.len > 1 {
                out.push(b",");
            }
            let value = &self.values[*start as usize..*end as usize];
            for part in [b"\"".as_slice(), name.as_bytes(), b"\":", value] {
                out.push(part);
            }
        }
        out.push(b"}");
        if !out.fits {
            return None;
        }
        let len = out.len;
        std::str::from_utf8(&self.object[..len]).ok()
    }
}

/// The object being written into [`FlatJson`]'s buffer; `fits` until a part did not.
struct Out<'a> {
    bytes: &'a mut [u8; FLAT_BYTES],
    len: usize,
    fits: bool,
}

impl Out<'_> {
    fn push(&mut self, part: &[u8]) {
        if self.len + part.len() > FLAT_BYTES {
            self.fits = false;
        } else if self.fits {
            self.bytes[self.len..self.len + part.len()].copy_from_slice(part);
            self.len += part.len();
        }
    }
}

impl Visit for FlatJson {
    fn record_str(&mut self, field: &Field, value: &str) {
        if json_plain(value) {
            self.keep(field, &["\"", value, "\""]);
        } else {
            self.unfit = true;
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.keep(field, &[itoa::Buffer::new().format(value)]);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.keep(field, &[itoa::Buffer::new().format(value)]);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(field, &[if value { "true" } else { "false" }]);
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {
        self.unfit = true;
    }
}

/// The Prometheus recorder, installed on first use. Metrics are process-wide.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ];
            let sizes = &[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("emporium_journal_batch_events".into()),
                        sizes,
                    )
                })
                .map(|b| b.build_recorder());
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    let _ = metrics::set_global_recorder(recorder);
                    // Counters of rare events are shown at zero from the start.
                    metrics::counter!("emporium_log_writes_failed_total").increment(0);
                    metrics::counter!("emporium_journal_events_total").increment(0);
                    metrics::counter!("emporium_dead_letters_total").increment(0);
                    handle
                }
                Err(e) => {
                    tracing::error!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::DefaultFields;

    /// A log that writes into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// Logs the same spans and events through `fields` and returns the text.
    fn log_with<N>(fields: N) -> String
    where
        N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, log_the_same);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// The same as [`log_with`], in the JSON log.
    fn json_log_with<N>(fields: N) -> String
    where
        N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .without_time()
            .json()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, log_the_same);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// The spans and events both logs are given.
    fn log_the_same() {
        let id = "req-7";
        let span = tracing::info_span!(
            "request",
            method = "POST",
            route = "/api/v1/drops/{drop_id}/purchase",
            request_id = id,
            r#type = "x"
        );
        let _entered = span.enter();
        let error = std::io::Error::other("disk \"full\"");
        tracing::warn!(order = %"o1", count = 3, ok = true, "a \"quoted\" message");
        tracing::error!(
            error = &error as &dyn std::error::Error,
            text = "tab\there",
            "failed"
        );
        tracing::info!(odd = "caf\u{e9}", slash = "a\\b", empty = "", "edge cases");
        let long = "x".repeat(300);
        tracing::info!(
            a = "first",
            long = long.as_str(),
            b = "after",
            n = 1,
            c = "last"
        );
        let inner = tracing::info_span!("inner", late = tracing::field::Empty);
        inner.record("late", "recorded later");
        let _inner = inner.enter();
        tracing::info!("inside");
        // Spans of every kind of field, in no order, recorded into after they opened.
        let numbers = tracing::info_span!(
            "numbers",
            zeta = 7u64,
            alpha = -3i64,
            flag = false,
            name = "장바구니 ünï",
            max = u64::MAX,
            min = i64::MIN,
            then = tracing::field::Empty
        );
        numbers.record("then", 42u64);
        let _numbers = numbers.enter();
        tracing::info!("numbers");
        let odd = tracing::info_span!("odd", quoted = "say \"hi\"", list = ?[1, 2], ratio = 0.5);
        let _odd = odd.enter();
        tracing::info!("odd");
        let empty = tracing::info_span!("empty");
        let _empty = empty.enter();
        tracing::info!("empty");
        let wide = tracing::info_span!(
            "wide",
            a = 1,
            b = 2,
            c = 3,
            d = 4,
            e = 5,
            f = 6,
            g = 7,
            h = 8,
            i = 9,
            text = long.as_str()
        );
        let _wide = wide.enter();
        tracing::info!("wide");
    }

    #[test]
    fn plain_fields_write_what_the_default_fields_write() {
        // Given the same spans and events, through tracing's default fields and through ours
        let default = log_with(DefaultFields::new());
        let plain = log_with(PlainFields);
        // Then the two logs are the same, text for text
        assert_eq!(plain, default);
        assert!(plain.contains(r#"request_id="req-7""#), "{plain}");
        assert!(plain.contains(r#"late="recorded later""#), "{plain}");
    }

    #[test]
    fn json_span_fields_write_what_the_json_fields_write() {
        // Given the same spans and events, in the JSON log, through tracing's JSON fields and
        // through ours
        let json = json_log_with(JsonFields::new());
        let ours = json_log_with(JsonSpanFields);
        // Then the two logs are the same, text for text
        assert_eq!(ours, json);
        assert!(ours.contains(r#""request_id":"req-7""#), "{ours}");
        assert!(ours.contains(r#""name":"장바구니 ünï""#), "{ours}");
        assert!(ours.contains(r#""then":42"#), "{ours}");
        assert!(!ours.contains("field_error"), "{ours}");
    }
}
