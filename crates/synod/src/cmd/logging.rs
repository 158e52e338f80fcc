//! Where a member's log goes and in what form: human-readable text (the default), or,
//! with `--logger zap`, one JSON object per line as etcd 3.5 writes them, so that log
//! pipelines built for etcd parse Synod's:
//!
//! `{"level":"info","ts":"2026-12-04T19:35:00.123456Z","caller":"server/server.rs:131","msg":"member serving","clients":"[…]"}`
//!
//! `level` is zap's lowercase name (tracing's TRACE is `debug`), `ts` the UTC time with
//! microseconds (etcd's layout), `caller` the source file under its crate and the line,
//! `msg` the message; every other field of the event follows as its own key.

use std::fmt::{self, Write as _};
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The log's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Logger {
    /// Human-readable lines.
    Text,
    /// etcd's zap JSON lines.
    Zap,
    /// etcd 3.4's older logger; here the same as `text`.
    Capnslog,
}

/// Starts logging at `level` in `logger`'s form to each of `outputs` (`stderr`,
/// `stdout`, `default` for stderr, or a file to append to).
pub fn init(level: Level, logger: Logger, outputs: &str) -> Result<(), String> {
    let writer = writers(outputs)?;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .with_target(false);
    let _ = match logger {
        Logger::Zap => builder.event_format(Zap).try_init(),
        Logger::Text | Logger::Capnslog => builder.try_init(),
    };
    Ok(())
}

fn writers(outputs: &str) -> Result<BoxMakeWriter, String> {
    let mut all: Option<BoxMakeWriter> = None;
    for output in outputs.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let next = match output {
            "stderr" | "default" => BoxMakeWriter::new(io::stderr),
            "stdout" => BoxMakeWriter::new(io::stdout),
            path => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("--log-outputs {path}: {e}"))?;
                BoxMakeWriter::new(std::sync::Arc::new(file))
            }
        };
        all = Some(match all {
            None => next,
            Some(before) => BoxMakeWriter::new(before.and(next)),
        });
    }
    all.ok_or_else(|| "--log-outputs names no output".to_string())
}

/// etcd's zap JSON lines.
struct Zap;

impl<S, N> FormatEvent<S, N> for Zap
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let caller = caller(meta.file().unwrap_or("?"), meta.line().unwrap_or(0));
        let mut line = format!(
            "{{\"level\":\"{}\",\"ts\":\"{}\",\"caller\":{},\"msg\":{}",
            level(*meta.level()),
            timestamp(SystemTime::now()),
            quoted(&caller),
            quoted(&fields.message),
        );
        for (key, value) in &fields.rest {
            let _ = write!(line, ",{}:{value}", quoted(key));
        }
        writeln!(writer, "{line}}}")
    }
}

fn level(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG | Level::TRACE => "debug",
    }
}

/// `crates/server/src/server.rs` line 9 as `server/server.rs:9` (zap's short caller).
fn caller(file: &str, line: u32) -> String {
    let file = file.strip_prefix("crates/").unwrap_or(file);
    let file = file.replacen("/src/", "/", 1);
    let short = Path::new(&file)
        .components()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    format!("{short}:{line}")
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The event's message and its other fields as JSON values, in order.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(String, String)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: serde_json::Value) {
        self.rest
            .push((field.name().to_string(), value.to_string()));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            _ => self.push(field, text.into()),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            _ => self.push(field, value.into()),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
}

/// UTC with microseconds, as etcd writes `ts`: `2026-12-04T19:35:00.123456Z`.
fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_etcds_layout_in_utc() {
        let at = UNIX_EPOCH + Duration::from_micros(1_796_413_500_123_456);
        assert_eq!(timestamp(at), "2026-12-04T19:45:00.123456Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // A leap day.
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn callers_are_short() {
        assert_eq!(
            caller("crates/server/src/server.rs", 131),
            "server/server.rs:131"
        );
        assert_eq!(caller("crates/server/src/node/mod.rs", 7), "node/mod.rs:7");
        assert_eq!(caller("src/main.rs", 1), "src/main.rs:1");
    }

    #[test]
    fn outputs_are_named_or_refused() {
        assert!(writers("stderr,stdout").is_ok());
        assert!(writers("").is_err());
        assert!(writers("/no/such/dir/log").is_err());
    }
}
