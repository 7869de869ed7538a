/* Hostile: try to leave the preopens and to write where it may not. Prints one line per
 * attempt, "<label> ok" or "<label> errno=<n>", and always exits 0.
 * Build: clang --target=wasm32-wasi --sysroot=/usr -O2 -o escape.wasm escape.c */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static void try_open(const char *label, const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd >= 0) {
        printf("%s ok\n", label);
        close(fd);
    } else {
        printf("%s errno=%d\n", label, errno);
    }
}

int main(void) {
    try_open("abs_etc_passwd", "/etc/passwd", O_RDONLY);
    try_open("dotdot_input", "/input/../../etc/passwd", O_RDONLY);
    try_open("dotdot_output", "/output/../../../etc/passwd", O_RDONLY);
    try_open("relative_dotdot", "../etc/passwd", O_RDONLY);
    try_open("write_input", "/input/new.txt", O_WRONLY | O_CREAT);
    try_open("read_input", "/input/data.txt", O_RDONLY);
    try_open("write_output", "/output/ok.txt", O_WRONLY | O_CREAT);
    return 0;
}
