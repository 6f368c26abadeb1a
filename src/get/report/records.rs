//! `--report FILE`: one record per URL, as JSON, NDJSON or CSV. Records are written
//! as downloads finish, never gathered in memory; the NDJSON file is flushed line
//! by line, so a crash loses none of the finished records. The JSON report closes
//! with the batch summary.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use super::Summary;
use crate::http::{DownloadError, Outcome, Verdict};

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Ndjson,
    Csv,
}

named!(ReportFormat {
    Json => "json": "one JSON document, ending with the summary",
    Ndjson => "ndjson": "one JSON record a line, flushed as each file ends",
    Csv => "csv": "one CSV row a record",
});

impl ReportFormat {
    /// The format a file name asks for, by its extension.
    pub fn from_path(path: &Path) -> Option<ReportFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(ReportFormat::Json),
            "ndjson" | "jsonl" => Some(ReportFormat::Ndjson),
            "csv" => Some(ReportFormat::Csv),
            _ => None,
        }
    }
}

/// One URL's record. Times are seconds; `queued` and `started` count from the
/// batch's start, `first_byte` and `total` from the job's start.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub url: Cow<'a, str>,
    pub final_url: Option<Cow<'a, str>>,
    pub file: Option<&'a str>,
    pub outcome: &'static str,
    pub status: Option<u16>,
    /// The file's size (saved or skipped); 0 for a failure.
    pub bytes: u64,
    /// Body bytes received for this URL in this run, over all attempts.
    pub fetched: u64,
    /// For a file finished from an earlier run's part: the bytes it kept.
    pub resumed_from: Option<u64>,
    pub content_type: Option<&'a str>,
    pub attempts: u32,
    pub worker: &'a str,
    pub queued: f64,
    pub started: f64,
    pub first_byte: Option<f64>,
    pub total: f64,
    pub error: Option<String>,
}

impl<'a> Record<'a> {
    pub fn of(outcome: &'a Outcome) -> Record<'a> {
        let (file, outcome_name, status, bytes, content_type, final_url, error) =
            match &outcome.verdict {
                Verdict::Saved(saved) => {
                    let reply = saved.reply.as_ref();
                    (
                        Some(saved.name.as_str()),
                        "saved",
                        reply.map(|reply| reply.status),
                        saved.bytes,
                        reply.and_then(|reply| reply.content_type.as_deref()),
                        reply
                            .and_then(|reply| reply.final_url.as_deref())
                            .map(crate::redact::url_text),
                        None,
                    )
                }
                Verdict::Skipped(complete) => (
                    Some(complete.name.as_str()),
                    "skipped",
                    None,
                    complete.bytes,
                    None,
                    None,
                    None,
                ),
                Verdict::Failed(error) => {
                    let status = match error {
                        DownloadError::Http { status, .. } => Some(*status),
                        _ => None,
                    };
                    (
                        None,
                        "failed",
                        status,
                        0,
                        None,
                        None,
                        Some(crate::redact::text(&error.to_string()).into_owned()),
                    )
                }
            };
        Record {
            url: crate::redact::url(&outcome.job.url),
            final_url,
            file,
            outcome: outcome_name,
            status,
            bytes,
            fetched: outcome.fetched,
            resumed_from: outcome.saved().and_then(|saved| saved.resumed_from),
            content_type,
            attempts: outcome.attempts,
            worker: &outcome.worker,
            queued: outcome.job.queued_at.as_secs_f64(),
            started: outcome.started_at.as_secs_f64(),
            first_byte: outcome.first_byte.map(|duration| duration.as_secs_f64()),
            total: outcome.elapsed.as_secs_f64(),
            error,
        }
    }
}

impl Record<'static> {
    /// The record of an input line that is not a URL grab can download:
    /// outcome `invalid`, no URL, the error naming the line.
    pub fn invalid(line: &crate::get::input::InvalidLine) -> Record<'static> {
        Record {
            url: Cow::Borrowed(""),
            final_url: None,
            file: None,
            outcome: "invalid",
            status: None,
            bytes: 0,
            fetched: 0,
            resumed_from: None,
            content_type: None,
            attempts: 0,
            worker: "input",
            queued: 0.0,
            started: 0.0,
            first_byte: None,
            total: 0.0,
            error: Some(crate::redact::text(&line.to_string()).into_owned()),
        }
    }
}

/// Writes records to the report file as they come.
pub struct RecordWriter {
    format: ReportFormat,
    json: Option<BufWriter<File>>,
    csv: Option<csv::Writer<File>>,
    written: u64,
}

impl RecordWriter {
    pub fn create(path: &Path, format: ReportFormat) -> io::Result<RecordWriter> {
        let file = File::create(path)?;
        let mut writer = RecordWriter {
            format,
            json: None,
            csv: None,
            written: 0,
        };
        match format {
            ReportFormat::Csv => writer.csv = Some(csv::Writer::from_writer(file)),
            ReportFormat::Json => {
                let mut out = BufWriter::new(file);
                out.write_all(b"{\"records\": [\n")?;
                writer.json = Some(out);
            }
            ReportFormat::Ndjson => writer.json = Some(BufWriter::new(file)),
        }
        Ok(writer)
    }

    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        match (self.format, self.json.as_mut(), self.csv.as_mut()) {
            (ReportFormat::Csv, _, Some(csv)) => {
                csv.serialize(record).map_err(io::Error::other)?;
                csv.flush()?;
            }
            (ReportFormat::Json, Some(out), _) => {
                if self.written > 0 {
                    out.write_all(b",\n")?;
                }
                serde_json::to_writer(&mut *out, record)?;
            }
            (_, Some(out), _) => {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
                // Line by line, so a crash loses no finished record.
                out.flush()?;
            }
            _ => {}
        }
        self.written += 1;
        Ok(())
    }

    /// Closes the report; the JSON one ends with the summary.
    pub fn finish(mut self, summary: &Summary) -> io::Result<()> {
        if let Some(mut out) = self.json.take() {
            if self.format == ReportFormat::Json {
                out.write_all(b"\n],\n\"summary\": ")?;
                serde_json::to_writer_pretty(&mut out, summary)?;
                out.write_all(b"}\n")?;
            }
            out.flush()?;
        }
        if let Some(mut csv) = self.csv.take() {
            csv.flush()?;
        }
        Ok(())
    }
}
