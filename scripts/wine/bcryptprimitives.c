/* bcryptprimitives.dll for Wine older than 8.13, which lacks it.
 *
 * Rust's standard library on Windows gets its random bytes (HashMap keys,
 * and so every lab3 program) from ProcessPrng in bcryptprimitives.dll,
 * which Windows 10 and later have and Wine added only in 8.13. Without it
 * the .exe files do not start under Debian 12's wine64 8.0. This shim
 * exports ProcessPrng over advapi32's SystemFunction036 (RtlGenRandom),
 * which Wine has always had. scripts/wine-setup.sh builds it with
 * mingw-w64 into the Wine prefix's system32: for the tests only, never
 * shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
