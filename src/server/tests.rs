//! Router tests: every endpoint through `oneshot`, no socket.
