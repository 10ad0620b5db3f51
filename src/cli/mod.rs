//! The command-line front ends of the engine.

pub mod control;
pub mod devices;
pub mod play;
pub mod sim;

/// Logs go to stderr; `RUST_LOG` picks the level (warnings by default, so `play`'s own
/// progress lines stay readable). Secrets never: see [`voxboard::logging`].
pub fn init_logging() {
    voxboard::logging::init_cli();
}

/// Windows: the exe is linked as a GUI program (`windows_subsystem` in main.rs), so it gets no
/// console of its own and, started from cmd or PowerShell, none of the console's handles. This
/// attaches to the parent's console so that what `play`, `devices` and `sim` print shows there.
/// Output redirected to a file or a pipe already has its handles and is left as it is. Fails
/// quietly where there is no parent console (started from Explorer). Elsewhere: nothing.
pub fn attach_console() {
    #[cfg(windows)]
    {
        use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
        use windows_sys::Win32::System::Console::{
            ATTACH_PARENT_PROCESS, AttachConsole, GetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE,
        };
        let missing = |which| {
            // SAFETY: GetStdHandle only reads the process's standard handle table.
            let h = unsafe { GetStdHandle(which) };
            h.is_null() || h == INVALID_HANDLE_VALUE
        };
        if missing(STD_OUTPUT_HANDLE) || missing(STD_ERROR_HANDLE) {
            // SAFETY: no pointers; failure (no parent console, already attached) is harmless.
            unsafe {
                AttachConsole(ATTACH_PARENT_PROCESS);
            }
        }
    }
}
