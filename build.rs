//! Windows builds only: the exe's version info, manifest and icon, compiled by MinGW's `windres`
//! into a COFF object that is linked into the binaries, and the static libssp that the bundled
//! libopus needs (docs/platform.md §11). For every other target this does nothing, so Linux
//! builds need no Windows tools.
//!
//! No crate for this (winresource, embed-resource): a build-dependency cannot be limited to
//! Windows targets in a way the build script itself can see when cross-building, so it would be
//! built for Linux too; calling windres is all those crates do for the gnu toolchain.
//!
//! `VOXBOARD_ICON` names the .ico to embed (scripts/windows-build draws one); without it the exe
//! gets version info and manifest but Windows' default icon. `WINDRES` overrides the tool.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=packaging/windows/voxboard.exe.manifest");
    println!("cargo:rerun-if-env-changed=VOXBOARD_ICON");
    println!("cargo:rerun-if-env-changed=WINDRES");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    if env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu") {
        println!(
            "cargo:warning=version info and icon are embedded only by the MinGW (windows-gnu) build"
        );
        return;
    }
    // audiopus_sys builds libopus with cmake, and opus's CMake turns on -fstack-protector-strong
    // and _FORTIFY_SOURCE, which on MinGW call into libssp (__stack_chk_fail, __memcpy_chk).
    // Statically, so the exe imports no libssp-0.dll; libssp itself needs msvcrt and advapi32,
    // and these come after Rust's own libraries on the linker's command line. Here rather than
    // as rustflags in .cargo/config.toml: changing those rebuilds every dependency.
    for arg in ["-l:libssp.a", "-lmsvcrt", "-ladvapi32"] {
        println!("cargo:rustc-link-arg={arg}");
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let version = env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    // 1.2.3-beta.1 -> 1,2,3,0: Windows wants four numbers.
    let mut nums: Vec<u16> = version
        .split(['-', '+'])
        .next()
        .unwrap_or("0")
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    nums.resize(4, 0);
    let numeric = format!("{},{},{},{}", nums[0], nums[1], nums[2], nums[3]);

    let rc_path = |p: PathBuf| p.display().to_string().replace('\\', "/");
    let mut rc = String::new();
    if let Some(icon) = env::var_os("VOXBOARD_ICON").filter(|s| !s.is_empty()) {
        let icon = PathBuf::from(icon);
        println!("cargo:rerun-if-changed={}", icon.display());
        // Resource id 1: Explorer, the taskbar and shortcuts take the first icon group.
        rc.push_str(&format!("1 ICON \"{}\"\n", rc_path(icon)));
    } else {
        println!(
            "cargo:warning=VOXBOARD_ICON is not set: the exe gets no icon (scripts/windows-build sets it)"
        );
    }
    // 24 = RT_MANIFEST, 1 = the process manifest.
    let manifest = manifest_dir.join("packaging/windows/voxboard.exe.manifest");
    rc.push_str(&format!("1 24 \"{}\"\n", rc_path(manifest)));
    // Numeric constants instead of winver.h: VOS_NT_WINDOWS32, VFT_APP.
    rc.push_str(&format!(
        r#"1 VERSIONINFO
FILEVERSION {numeric}
PRODUCTVERSION {numeric}
FILEFLAGSMASK 0x3f
FILEFLAGS 0x0
FILEOS 0x40004
FILETYPE 0x1
FILESUBTYPE 0x0
BEGIN
  BLOCK "StringFileInfo"
  BEGIN
    BLOCK "040904b0"
    BEGIN
      VALUE "CompanyName", "Voxboard developers"
      VALUE "FileDescription", "Voxboard - a soundboard for Discord voice"
      VALUE "FileVersion", "{version}"
      VALUE "InternalName", "voxboard"
      VALUE "LegalCopyright", "MIT OR Apache-2.0"
      VALUE "OriginalFilename", "voxboard.exe"
      VALUE "ProductName", "Voxboard"
      VALUE "ProductVersion", "{version}"
    END
  END
  BLOCK "VarFileInfo"
  BEGIN
    VALUE "Translation", 0x409, 1200
  END
END
"#
    ));
    let rc_file = out.join("voxboard.rc");
    std::fs::write(&rc_file, rc).expect("writing voxboard.rc");

    let windres = env::var("WINDRES").unwrap_or_else(|_| {
        let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
        if cfg!(windows) {
            "windres".into() // MSYS2 on Windows
        } else {
            format!("{arch}-w64-mingw32-windres")
        }
    });
    let object = out.join("voxboard-resources.o");
    let status = Command::new(&windres)
        .arg("--input")
        .arg(&rc_file)
        .arg("--output-format=coff")
        .arg("--output")
        .arg(&object)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {windres} (Debian: apt-get install mingw-w64): {e}")
        });
    assert!(
        status.success(),
        "{windres} failed on {}",
        rc_file.display()
    );
    // An object file given to the linker is always linked whole, resources included.
    println!("cargo:rustc-link-arg-bins={}", object.display());
}
