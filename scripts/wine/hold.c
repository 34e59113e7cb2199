/* hold.exe PATH: holds PATH open with no sharing, as a Windows editor or
 * Office does, until its standard input closes. For tests/wine_pairs.rs,
 * which needs a Windows process holding a file that Server's Windows build
 * must then wait for. Prints "held" once the file is open. Built by
 * scripts/wine-setup.sh with mingw-w64; for the tests only. */
#include <stdio.h>
#include <windows.h>

int wmain(int argc, wchar_t **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hold.exe PATH\n");
        return 2;
    }
    HANDLE h = CreateFileW(argv[1], GENERIC_READ | GENERIC_WRITE, 0, NULL,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "hold.exe: cannot open: error %lu\n", GetLastError());
        return 1;
    }
    printf("held\n");
    fflush(stdout);
    char buf[64];
    while (fread(buf, 1, sizeof buf, stdin) > 0) {
    }
    CloseHandle(h);
    return 0;
}
