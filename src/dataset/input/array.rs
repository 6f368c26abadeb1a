//! A JSON array of records (pandas' `to_json(orient='records')`), read one
//! element at a time. serde_json walks the array on a thread of its own: a
//! `Visitor` takes each element from the `SeqAccess` as a JSON object and
//! hands it over a small bounded channel, and the thread waits while the
//! channel is full. So what is held is a few records, whatever the array's
//! length, as for JSON lines; the consumer pulls them as an iterator.
//!
//! An element that is not an object, or not JSON, ends the array: the error
//! names the element and serde_json's line and column, and nothing after it
//! is read, since later elements' places could no longer be trusted.

use std::fmt;
use std::io::{self, BufRead};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use serde::de::{self, Deserializer as _, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Elements parsed ahead of the consumer: enough that the parsing thread
/// rarely waits, few enough that a table of large records stays small.
const RECORDS_AHEAD: usize = 64;

/// Where an array stopped being readable.
#[derive(Debug)]
pub struct Misread {
    /// The element it happened in (from 1), or `None` outside the elements:
    /// no array there at all, or something after its closing bracket.
    pub record: Option<u64>,
    /// serde_json's error, with its line and column.
    pub error: serde_json::Error,
}

type Message = Result<Map<String, Value>, Misread>;

/// The elements of a JSON array, in order; a `Misread` is the last item.
/// Dropping it stops the parsing thread (at its next element) and waits
/// for it, so the file is closed when this is gone.
pub struct Records {
    receiver: Option<Receiver<Message>>,
    parser: Option<JoinHandle<()>>,
}

/// Starts reading the array `reader` holds (buffered, as serde_json reads
/// a byte at a time); its elements come as they are parsed.
pub fn records(reader: impl BufRead + Send + 'static) -> io::Result<Records> {
    let (sender, receiver) = mpsc::sync_channel(RECORDS_AHEAD);
    let parser = thread::Builder::new()
        .name("json array".to_string())
        .spawn(move || parse(reader, &sender))?;
    Ok(Records {
        receiver: Some(receiver),
        parser: Some(parser),
    })
}

impl Iterator for Records {
    type Item = Result<Map<String, Value>, Misread>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(message) = self.receiver.as_ref()?.recv().ok() else {
            // The parser is done; one that panicked passes its panic on
            // rather than the array seeming to end there.
            self.receiver = None;
            if let Some(Err(panic)) = self.parser.take().map(JoinHandle::join) {
                std::panic::resume_unwind(panic);
            }
            return None;
        };
        if message.is_err() {
            self.receiver = None;
        }
        Some(message)
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        // Without a receiver, the parser's next send fails and it returns.
        self.receiver = None;
        if let Some(parser) = self.parser.take() {
            let _ = parser.join();
        }
    }
}

/// Where the parser is in the array, for what an error is about.
#[derive(Default)]
struct Progress {
    /// Inside the brackets: the elements sent so far.
    sent: Option<u64>,
    /// Past the closing bracket.
    ended: bool,
    /// The consumer is gone: the error that stopped parsing is ours.
    abandoned: bool,
}

fn parse(reader: impl BufRead, sender: &SyncSender<Message>) {
    let mut progress = Progress::default();
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let result = (&mut deserializer)
        .deserialize_seq(Elements {
            sender,
            progress: &mut progress,
        })
        // Nothing but white space after the array.
        .and_then(|()| deserializer.end());
    if let Err(error) = result {
        if progress.abandoned {
            return;
        }
        let record = match progress.sent {
            Some(sent) if !progress.ended => Some(sent + 1),
            _ => None,
        };
        let _ = sender.send(Err(Misread { record, error }));
    }
}

/// Takes the array's elements one at a time, each sent on as it is parsed.
struct Elements<'a> {
    sender: &'a SyncSender<Message>,
    progress: &'a mut Progress,
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<(), A::Error> {
        let mut sent = 0;
        self.progress.sent = Some(sent);
        while let Some(record) = elements.next_element::<Map<String, Value>>()? {
            if self.sender.send(Ok(record)).is_err() {
                self.progress.abandoned = true;
                return Err(de::Error::custom("no one reads the records any more"));
            }
            sent += 1;
            self.progress.sent = Some(sent);
        }
        self.progress.ended = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &'static str) -> Vec<Result<Map<String, Value>, Misread>> {
        records(text.as_bytes()).unwrap().collect()
    }

    #[test]
    fn each_element_comes_as_an_object() {
        let records = read(" [ {\"a\": 1}, {\"a\": [2, {\"b\": null}]},\n{} ] \n");
        let records: Vec<Map<String, Value>> = records.into_iter().map(Result::unwrap).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1]["a"], serde_json::json!([2, {"b": null}]));
        assert!(read("[]").is_empty());
    }

    #[test]
    fn a_bad_element_is_named_with_its_line_and_column_and_ends_the_array() {
        for (text, record, position) in [
            (
                "[{\"a\": 1},\n {\"a\": 2,,}, {\"a\": 3}]",
                2,
                "line 2 column 10",
            ),
            ("[{\"a\": 1}, 7, {\"a\": 3}]", 2, "line 1 column 13"),
            ("[{\"a\": 1} {\"a\": 3}]", 2, "line 1 column 11"),
            ("[{\"a\": 1}, {\"a\": 2}", 3, "line 1 column 19"),
        ] {
            let mut records = read(text).into_iter();
            assert!(records.next().unwrap().is_ok(), "{text}");
            if record == 3 {
                assert!(records.next().unwrap().is_ok(), "{text}");
            }
            let misread = records.next().unwrap().unwrap_err();
            assert_eq!(misread.record, Some(record), "{text}");
            assert!(
                misread.error.to_string().ends_with(position),
                "{text}: {}",
                misread.error
            );
            assert!(records.next().is_none(), "{text}");
        }
    }

    #[test]
    fn what_is_around_the_elements_is_checked_too() {
        for text in ["{\"a\": 1}", "", "[{\"a\": 1}] [", "[{\"a\": 1}] x"] {
            let misread = read(text).into_iter().find_map(Result::err).unwrap();
            assert_eq!(misread.record, None, "{text}: {}", misread.error);
        }
    }
}
