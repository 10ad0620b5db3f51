//! An in-memory [`Network`]: it records what the engine asks for and performs nothing. A test
//! answers the requests itself (pushing the [`NetEvent`](super::NetEvent)s a server would
//! cause) and moves the clock by hand, so the connection state machine runs without sockets,
//! threads or waiting.

use std::sync::Mutex;

use super::network::{NetRequest, Network};

#[derive(Default)]
pub struct FakeNetwork {
    requests: Mutex<Vec<NetRequest>>,
}

impl FakeNetwork {
    /// Everything asked for since the last call, oldest first.
    pub fn take(&self) -> Vec<NetRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Network for FakeNetwork {
    fn perform(&self, request: NetRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
    }
}
