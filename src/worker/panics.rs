//! Panics in the worker: the hook that records a panic's message and location, so that the
//! code that caught the panic can log it with the request it happened in.

use std::cell::RefCell;

thread_local! {
    /// The last panic's message and location, recorded by the worker's panic hook so that the
    /// code that caught it can log it with the request it happened in.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook that records each panic in [`LAST_PANIC`] (instead of printing it), so
/// that it is logged once, as a structured line, by whoever catches it.
pub(super) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        let text = match info.location() {
            Some(l) => format!("{msg} ({}:{})", l.file(), l.line()),
            None => msg,
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
    }));
}

/// The last panic recorded by the hook (taking it).
pub(crate) fn take_panic() -> String {
    LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| "unknown panic".into())
}
