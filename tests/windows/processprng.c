/*
 * Test-only stand-in for Windows' bcryptprimitives.dll, for running voxboard.exe under Wine 8.0
 * (scripts/windows-test; docs/platform.md §11). Rust's standard library gets its random bytes
 * from ProcessPrng in bcryptprimitives.dll (Windows 10 and later), which Wine 8.0 does not have,
 * so the exe would not start. This DLL exports ProcessPrng on top of RtlGenRandom (advapi32's
 * SystemFunction036), which Wine has. Never shipped: real Windows has the real DLL.
 *
 *   x86_64-w64-mingw32-gcc -O2 -shared -o bcryptprimitives.dll processprng.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom */

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
