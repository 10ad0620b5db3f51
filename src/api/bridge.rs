//! The one road between the HTTP side and the app: a request goes into a bounded channel, the
//! UI thread is asked for a frame, and the handler waits (asynchronously, on the API's own
//! runtime) for the answer the UI thread sends back.
//!
//! Why a channel to the UI thread rather than a shared handle: the board, the sound library,
//! pending decodes and push-to-talk all live in `Core` on the UI thread, and a click already
//! knows how to play a sound from there. Answering there keeps one owner for that state and
//! makes an API play behave exactly like a click. eframe calls `App::logic` for a requested
//! repaint even while the window is minimised or hidden, so the API works in the background.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use tokio::sync::oneshot;

use super::error::{Answer, ApiError};

/// How long a handler waits for the UI thread before answering 503 `busy`. Frames come at
/// least every few milliseconds once one is requested; this only trips on a stalled app.
pub const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// Requests waiting for the UI thread at most; more are answered 503 `busy` at once (the
/// rate limit keeps this from happening in practice).
const QUEUE: usize = 64;

/// What the API asks of the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Sounds,
    PlayId(u64),
    PlayName(String),
    StopSound(u64),
    StopAll,
    PushToTalk(bool),
    /// Already checked to be within 0..=2.
    MasterVolume(f32),
    Status,
}

pub type Reply = Result<Answer, ApiError>;

/// A request and where its answer goes.
pub struct Call {
    pub request: Request,
    reply: oneshot::Sender<Reply>,
}

impl Call {
    /// Sends the answer back; a handler that gave up waiting simply does not get it.
    pub fn answer(self, reply: Reply) {
        let _ = self.reply.send(reply);
    }
}

/// The HTTP side's end: cloned into every handler.
#[derive(Clone)]
pub struct AppLink {
    tx: SyncSender<Call>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// The UI thread's end, drained every frame.
pub struct Inbox {
    rx: Receiver<Call>,
}

/// A connected pair; `wake` asks the UI thread for a frame.
pub fn link(wake: Arc<dyn Fn() + Send + Sync>) -> (AppLink, Inbox) {
    let (tx, rx) = sync_channel(QUEUE);
    (AppLink { tx, wake }, Inbox { rx })
}

impl AppLink {
    /// Asks the app and waits for its answer, never blocking the runtime's thread.
    pub async fn ask(&self, request: Request) -> Reply {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Call { request, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiError::busy()),
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::shutting_down()),
        }
        (self.wake)();
        match tokio::time::timeout(ANSWER_WAIT, answer).await {
            Ok(Ok(reply)) => reply,
            // The inbox was dropped with the call in it: the app is closing.
            Ok(Err(_)) => Err(ApiError::shutting_down()),
            Err(_) => Err(ApiError::busy()),
        }
    }
}

impl Inbox {
    /// Up to `max` waiting calls, without waiting.
    pub fn take(&self, max: usize) -> Vec<Call> {
        self.rx.try_iter().take(max).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_comes_back_and_a_dropped_inbox_means_shutting_down() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (link, inbox) = link(Arc::new(|| {}));
        let answering = std::thread::spawn(move || {
            loop {
                if let Some(call) = inbox.take(1).pop() {
                    assert_eq!(call.request, Request::StopAll);
                    call.answer(Ok(Answer::ok(serde_json::json!({"ok": true}))));
                    return inbox;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let reply = rt.block_on(link.ask(Request::StopAll));
        assert_eq!(reply, Ok(Answer::ok(serde_json::json!({"ok": true}))));
        drop(answering.join().unwrap());
        let reply = rt.block_on(link.ask(Request::Status));
        assert_eq!(reply.unwrap_err().code, "shutting_down");
    }
}
