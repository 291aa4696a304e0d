use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};

use super::{BoundedLineReader, Line, LineWriter, READ_BUFFER_BYTES, WriteLineError};

fn complete(bytes: &[u8]) -> Option<Line> {
    Some(Line::Complete(bytes.to_vec()))
}

async fn read_all(input: &[u8], max: usize) -> Vec<Line> {
    let mut reader = BoundedLineReader::new(input, max);
    let mut lines = Vec::new();
    while let Some(line) = reader.next_line().await.unwrap() {
        lines.push(line);
    }
    lines
}

#[tokio::test]
async fn line_exactly_at_limit_is_complete() {
    let lines = read_all(b"abcd\nefgh\n", 4).await;
    assert_eq!(
        lines,
        vec![
            Line::Complete(b"abcd".to_vec()),
            Line::Complete(b"efgh".to_vec())
        ]
    );
}

#[tokio::test]
async fn line_one_byte_over_is_too_long_and_next_line_reads_fine() {
    let lines = read_all(b"abcde\nok\n", 4).await;
    assert_eq!(
        lines,
        vec![
            Line::TooLong { bytes_discarded: 5 },
            Line::Complete(b"ok".to_vec())
        ]
    );
}

#[tokio::test]
async fn crlf_keeps_the_carriage_return_and_counts_it() {
    let lines = read_all(b"{}\r\nabc\r\n", 3).await;
    assert_eq!(
        lines,
        vec![
            Line::Complete(b"{}\r".to_vec()),
            Line::TooLong { bytes_discarded: 4 }
        ]
    );
}

#[tokio::test]
async fn final_line_without_newline_is_complete_then_eof() {
    let mut reader = BoundedLineReader::new(&b"one\ntwo"[..], 16);
    assert_eq!(reader.next_line().await.unwrap(), complete(b"one"));
    assert_eq!(reader.next_line().await.unwrap(), complete(b"two"));
    assert_eq!(reader.next_line().await.unwrap(), None);
    assert_eq!(reader.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn empty_lines_are_returned_as_empty() {
    let lines = read_all(b"\n\na\n\n", 4).await;
    assert_eq!(
        lines,
        vec![
            Line::Complete(Vec::new()),
            Line::Complete(Vec::new()),
            Line::Complete(b"a".to_vec()),
            Line::Complete(Vec::new()),
        ]
    );
}

#[tokio::test]
async fn empty_input_is_eof() {
    assert_eq!(read_all(b"", 4).await, Vec::new());
}

#[tokio::test]
async fn eof_in_the_middle_of_an_over_long_line_reports_it_too_long() {
    let lines = read_all(b"ok\nabcdefgh", 4).await;
    assert_eq!(
        lines,
        vec![
            Line::Complete(b"ok".to_vec()),
            Line::TooLong { bytes_discarded: 8 }
        ]
    );
}

#[tokio::test]
async fn lines_spanning_many_reads_are_joined() {
    // Longer than the read buffer, so the line is assembled from several fills.
    let long = vec![b'x'; READ_BUFFER_BYTES * 3 + 17];
    let mut input = long.clone();
    input.extend_from_slice(b"\nend\n");
    let lines = read_all(&input, long.len()).await;
    assert_eq!(
        lines,
        vec![Line::Complete(long), Line::Complete(b"end".to_vec())]
    );
}

/// Produces `len` bytes of `a`, then `tail`; returns `Pending` (after waking itself) every few reads
/// so that the test can look at the reader between reads.
struct Generated {
    remaining: usize,
    tail: &'static [u8],
    reads: usize,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.reads += 1;
        if self.reads.is_multiple_of(4) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.remaining > 0 {
            let n = self.remaining.min(buf.remaining());
            buf.put_slice(&vec![b'a'; n]);
            self.remaining -= n;
        } else {
            let n = self.tail.len().min(buf.remaining());
            buf.put_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
        }
        Poll::Ready(Ok(()))
    }
}

/// Polls `fut` once: `Some(output)` if it finished, `None` if it is pending.
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut fut).poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[tokio::test]
async fn ten_mib_line_with_one_kib_limit_is_never_buffered() {
    const LIMIT: usize = 1024;
    const HUGE: usize = 10 * 1024 * 1024;
    let source = Generated {
        remaining: HUGE,
        tail: b"\n{\"ok\":true}\n",
        reads: 0,
    };
    let mut reader = BoundedLineReader::new(source, LIMIT);
    let mut max_seen = 0;
    let mut pauses = 0;
    let first = loop {
        // `next_line` is cancel safe: dropping a pending call loses nothing.
        let polled = poll_once(Box::pin(reader.next_line())).await;
        max_seen = max_seen.max(reader.buffer_capacity());
        match polled {
            Some(result) => break result.unwrap(),
            None => pauses += 1,
        }
    };
    assert_eq!(
        first,
        Some(Line::TooLong {
            bytes_discarded: HUGE
        })
    );
    assert!(
        pauses > 100,
        "the test must observe the reader mid-line, saw {pauses} pauses"
    );
    assert!(
        max_seen <= LIMIT + READ_BUFFER_BYTES,
        "reader held {max_seen} bytes"
    );
    let second = loop {
        if let Some(result) = poll_once(Box::pin(reader.next_line())).await {
            break result.unwrap();
        }
    };
    assert_eq!(second, complete(b"{\"ok\":true}"));
    assert!(reader.buffer_capacity() <= LIMIT + READ_BUFFER_BYTES);
}

#[tokio::test]
async fn line_buffer_never_grows_past_the_limit() {
    // 1000 bytes arrive in 8 KiB fills; geometric growth must stop at the limit, not overshoot it.
    let limit = 1000;
    let mut input = vec![b'z'; limit];
    input.push(b'\n');
    let mut reader = BoundedLineReader::new(&input[..], limit);
    assert_eq!(
        reader.next_line().await.unwrap(),
        Some(Line::Complete(vec![b'z'; limit]))
    );
}

#[tokio::test]
async fn writer_appends_newline_and_flushes() {
    let mut writer = LineWriter::new(Vec::new());
    writer.write_line(b"{\"a\":1}").await.unwrap();
    writer.write_line(b"").await.unwrap();
    assert_eq!(writer.into_inner(), b"{\"a\":1}\n\n".to_vec());
}

#[tokio::test]
async fn writer_rejects_embedded_newline_and_writes_nothing() {
    let mut writer = LineWriter::new(Vec::new());
    let err = writer.write_line(b"{\"a\":\n1}").await.unwrap_err();
    assert!(
        matches!(err, WriteLineError::EmbeddedNewline { offset: 5 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "message contains a newline at byte 5 and would be split in two; nothing was sent"
    );
    // The writer stays usable: nothing was written.
    writer.write_line(b"x").await.unwrap();
    assert_eq!(writer.into_inner(), b"x\n".to_vec());
}

#[tokio::test]
async fn writer_times_out_on_a_peer_that_does_not_read_and_stays_broken() {
    let (client, _server) = tokio::io::duplex(16);
    let mut writer = LineWriter::with_timeout(client, Duration::from_millis(50));
    let err = writer.write_line(&[b'x'; 64]).await.unwrap_err();
    assert!(
        matches!(err, WriteLineError::TimedOut { after } if after == Duration::from_millis(50))
    );
    let err = writer.write_line(b"y").await.unwrap_err();
    assert!(matches!(err, WriteLineError::Broken), "{err:?}");
}

// In-process line channels.

use super::{DISCARDED_HEAD_BYTES, LineSink, LineSource, line_channel};
use crate::stdio::StdinWriter;

#[tokio::test]
async fn channel_passes_whole_lines_in_order_and_ends_when_senders_are_gone() {
    let (tx, mut rx) = line_channel(64, 16);
    tx.send_line(b"one".to_vec()).await.unwrap();
    let mut sink = tx.clone();
    LineSink::write_line(&mut sink, b"").await.unwrap();
    drop((tx, sink));
    assert_eq!(rx.recv_line().await, complete(b"one"));
    assert_eq!(LineSource::next_line(&mut rx).await.unwrap(), complete(b""));
    assert_eq!(rx.recv_line().await, None);
}

#[tokio::test]
async fn channel_reports_an_over_long_line_with_its_head_and_goes_on() {
    let (tx, mut rx) = line_channel(4096, 8);
    let long: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    tx.send_line(long.clone()).await.unwrap();
    tx.send_line(b"12345678".to_vec()).await.unwrap();
    assert_eq!(
        rx.recv_line().await,
        Some(Line::TooLong {
            bytes_discarded: 1000
        })
    );
    assert_eq!(rx.discarded_head(), &long[..DISCARDED_HEAD_BYTES]);
    assert_eq!(rx.recv_line().await, complete(b"12345678"));
}

#[tokio::test]
async fn channel_refuses_an_embedded_newline_and_stays_usable() {
    let (tx, mut rx) = line_channel(64, 64);
    let err = tx.send_line(b"{\"a\":\n1}".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, WriteLineError::EmbeddedNewline { offset: 5 }),
        "{err:?}"
    );
    let err = tx.try_send_line(b"\n".to_vec()).unwrap_err();
    assert!(
        matches!(err, WriteLineError::EmbeddedNewline { offset: 0 }),
        "{err:?}"
    );
    tx.send_line(b"x".to_vec()).await.unwrap();
    drop(tx);
    assert_eq!(rx.recv_line().await, complete(b"x"));
    assert_eq!(rx.recv_line().await, None);
}

#[tokio::test]
async fn channel_full_times_out_or_refuses_and_closed_reader_is_reported() {
    let (tx, mut rx) = line_channel(8, 64);
    let tx = tx.with_timeout(Duration::from_millis(50));
    tx.send_line(b"first".to_vec()).await.unwrap();
    let err = tx.send_line(b"second".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, WriteLineError::TimedOut { after } if after == Duration::from_millis(50)),
        "{err:?}"
    );
    let err = tx.try_send_line(b"second".to_vec()).unwrap_err();
    assert!(matches!(err, WriteLineError::Full), "{err:?}");
    assert_eq!(rx.recv_line().await, complete(b"first"));
    rx.close();
    assert!(tx.is_closed());
    let err = tx.send_line(b"third".to_vec()).await.unwrap_err();
    assert!(matches!(err, WriteLineError::Closed), "{err:?}");
}

#[tokio::test]
async fn channel_is_bounded_in_bytes_and_a_line_larger_than_it_passes_alone() {
    let (tx, mut rx) = line_channel(10, 1 << 20);
    let tx = tx.with_timeout(Duration::from_millis(50));
    // Many small lines fit; the budget counts bytes (at least one per line).
    for _ in 0..5 {
        tx.try_send_line(b"ab".to_vec()).unwrap();
    }
    let err = tx.try_send_line(b"".to_vec()).unwrap_err();
    assert!(matches!(err, WriteLineError::Full), "{err:?}");
    // A line longer than the capacity waits until the pipe is empty, then passes alone.
    let big = vec![b'x'; 100];
    let err = tx.send_line(big.clone()).await.unwrap_err();
    assert!(matches!(err, WriteLineError::TimedOut { .. }), "{err:?}");
    for _ in 0..5 {
        assert_eq!(rx.recv_line().await, complete(b"ab"));
    }
    tx.send_line(big.clone()).await.unwrap();
    let err = tx.try_send_line(b"c".to_vec()).unwrap_err();
    assert!(matches!(err, WriteLineError::Full), "{err:?}");
    assert_eq!(rx.recv_line().await, Some(Line::Complete(big)));
    tx.try_send_line(b"c".to_vec()).unwrap();
    assert_eq!(rx.recv_line().await, complete(b"c"));
}

#[tokio::test]
async fn a_writer_waiting_for_room_learns_at_once_that_the_reader_is_gone() {
    let (tx, rx) = line_channel(4, 64);
    tx.send_line(b"full".to_vec()).await.unwrap();
    let waiting = tokio::spawn(async move { tx.send_line(b"more".to_vec()).await });
    tokio::task::yield_now().await;
    drop(rx);
    let err = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the writer should not wait for its timeout")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, WriteLineError::Closed), "{err:?}");
}

/// The reason `serve` passes lines over channels: a writer cancelled while the pipe is full (an
/// HTTP client that went away mid-request) must leave nothing behind, or the next message would
/// be glued to half of this one.
#[tokio::test]
async fn a_cancelled_write_into_a_full_channel_leaves_nothing_behind() {
    let (tx, mut rx) = line_channel(16, 1 << 20);
    let writer = StdinWriter::from_sender(tx);
    writer.write_line(b"queued").await.unwrap();
    let big = vec![b'x'; 256 * 1024];
    let cancelled = tokio::time::timeout(Duration::from_millis(50), writer.write_line(&big)).await;
    assert!(cancelled.is_err(), "the write should still be waiting");
    assert_eq!(rx.recv_line().await, complete(b"queued"));
    writer.write_line(b"{\"next\":1}").await.unwrap();
    assert_eq!(rx.recv_line().await, complete(b"{\"next\":1}"));
    writer.close().await;
    assert_eq!(rx.recv_line().await, None);
}

/// The same cancellation over a byte pipe may leave half a line in the pipe: the writer then
/// refuses every later line rather than glue it to that half.
#[tokio::test]
async fn a_write_cancelled_part_way_into_a_byte_pipe_breaks_the_writer() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let writer = StdinWriter::from_writer(ours);
    let big = vec![b'x'; 4096];
    let cancelled = tokio::time::timeout(Duration::from_millis(50), writer.write_line(&big)).await;
    assert!(cancelled.is_err(), "the write should still be waiting");
    let err = writer.write_line(b"{\"next\":1}").await.unwrap_err();
    assert!(matches!(err, WriteLineError::Broken), "{err:?}");
    writer.close().await;
    let mut received = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut received)
        .await
        .unwrap();
    assert!(received.len() < big.len(), "part of the big line only");
    assert!(
        !received.windows(10).any(|w| w == b"{\"next\":1"),
        "the next message was not glued to it"
    );
}

#[tokio::test]
async fn a_line_writer_cancelled_before_writing_refuses_later_lines_too() {
    let (client, _server) = tokio::io::duplex(8);
    let mut writer = LineWriter::new(client);
    let cancelled =
        tokio::time::timeout(Duration::from_millis(50), writer.write_line(&[b'y'; 64])).await;
    assert!(cancelled.is_err());
    let err = writer.write_line(b"z").await.unwrap_err();
    assert!(matches!(err, WriteLineError::Broken), "{err:?}");
}
