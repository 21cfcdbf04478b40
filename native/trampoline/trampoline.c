/* The last program pyoci's container process runs before the real one.
 *
 * pyoci_exec() loads this tiny static binary from a sealed memfd and execs it
 * with argv = [MARKER, path, args...]; it execs path with args. Anything else
 * (say, the kernel running it as the interpreter of a "#!/proc/self/exe"
 * script, where argv[0] is that path) is refused, so it can't loop. While it runs,
 * /proc/self/exe names an anonymous sealed memfd, so a container entrypoint of
 * "#!/proc/self/exe" (the CVE-2019-5736 attack) reaches this copy and never
 * the host's Python interpreter.
 *
 * Built with -nostdlib on x86_64 and aarch64 (a few hundred bytes, no libc),
 * and with a static libc elsewhere (PYOCI_TRAMPOLINE_LIBC).
 */
#define PYOCI_TRAMPOLINE_MARKER "pyoci-exec-trampoline"

#ifdef PYOCI_TRAMPOLINE_LIBC
#include <errno.h>
#include <unistd.h>

#include <string.h>

int main(int argc, char **argv, char **envp)
{
    if (argc < 3 || strcmp(argv[0], PYOCI_TRAMPOLINE_MARKER) != 0) {
        static const char no[] = "pyoci: the exec trampoline cannot be run this way\n";
        (void)!write(2, no, sizeof(no) - 1);
        return 126;
    }
    execve(argv[1], argv + 2, envp);
    static const char msg[] = "pyoci: exec failed in trampoline\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    return errno == ENOENT ? 127 : 126;
}
#else
#include <asm/unistd.h>

static long sys3(long n, long a, long b, long c)
{
    long ret;
#if defined(__x86_64__)
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    ret = x0;
#else
#error "no raw syscall stub for this architecture: build with -DPYOCI_TRAMPOLINE_LIBC"
#endif
    return ret;
}

static int is_marker(const char *s)
{
    const char *m = PYOCI_TRAMPOLINE_MARKER;
    while (*m && *s == *m)
        s++, m++;
    return *m == 0 && *s == 0;
}

__attribute__((noreturn, used)) void pyoci_trampoline(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 3 || !is_marker(argv[0])) {
        static const char no[] = "pyoci: the exec trampoline cannot be run this way\n";
        sys3(__NR_write, 2, (long)no, sizeof(no) - 1);
        for (;;)
            sys3(__NR_exit_group, 126, 0, 0);
    }
    long err = sys3(__NR_execve, (long)argv[1], (long)(argv + 2), (long)envp);
    static const char msg[] = "pyoci: exec failed in trampoline\n";
    sys3(__NR_write, 2, (long)msg, sizeof(msg) - 1);
    for (;;)
        sys3(__NR_exit_group, err == -2 ? 127 : 126, 0, 0);
}

#if defined(__x86_64__)
__asm__(".text\n.globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call pyoci_trampoline\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl _start\n_start:\n  mov x0, sp\n  bl pyoci_trampoline\n");
#endif
#endif
