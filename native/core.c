/* Syscall shims that CPython 3.11 lacks, and the final exec step.
 *
 * pyoci_exec runs after the last line of Python in the container process: it
 * loads seccomp, changes ids, sets capabilities, resets signals, marks every
 * extra fd close-on-exec and execs. Nothing here may allocate through Python.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pyoci_native.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE 0xb703
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct open_how_compat {
    uint64_t flags, mode, resolve;
};

struct mount_attr_compat {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

int pyoci_unshare(int flags) { return unshare(flags); }
int pyoci_setns(int fd, int nstype) { return setns(fd, nstype); }
int pyoci_ns_type(int fd) { return ioctl(fd, NS_GET_NSTYPE); }

int pyoci_mount(const char *source, const char *target, const char *fstype,
                unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

int pyoci_umount2(const char *target, int flags) { return umount2(target, flags); }

int pyoci_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int pyoci_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
    struct open_how_compat how = {flags, mode, resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int pyoci_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set,
                        uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd)
{
    struct mount_attr_compat attr = {attr_set, attr_clr, propagation, userns_fd};
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

int pyoci_open_tree(int dirfd, const char *path, unsigned int flags)
{
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

int pyoci_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                     unsigned int flags)
{
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

int pyoci_sethostname(const char *name, size_t len) { return sethostname(name, len); }
int pyoci_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

int pyoci_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

int pyoci_personality(unsigned long persona) { return personality(persona); }

int pyoci_setgroups(int n, const unsigned int *groups)
{
    return setgroups((size_t)n, (const gid_t *)groups);
}

int pyoci_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}

int pyoci_cap_last(void)
{
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    char buf[16] = {0};
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    int v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (buf[i] - '0');
    return v;
}

static int load_seccomp(const struct pyoci_exec *x)
{
    struct sock_fprog prog = {
        .len = (unsigned short)x->seccomp_len,
        .filter = (struct sock_filter *)x->seccomp_filter,
    };
    int fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, x->seccomp_flags, &prog);
    if (fd < 0)
        return -1;
    if (x->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        /* Hand the listener fd over: one message, the state JSON as payload. */
        char cbuf[CMSG_SPACE(sizeof(int))];
        memset(cbuf, 0, sizeof(cbuf));
        struct iovec iov = {(void *)x->seccomp_notify_msg, x->seccomp_notify_msg_len};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf;
        msg.msg_controllen = sizeof(cbuf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        if (x->seccomp_notify_sock < 0 || sendmsg(x->seccomp_notify_sock, &msg, 0) < 0)
            return -1;
        close(fd);
        close(x->seccomp_notify_sock);
    }
    return 0;
}

static int set_caps(const struct pyoci_exec *x)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)x->cap_effective;
    data[1].effective = (uint32_t)(x->cap_effective >> 32);
    data[0].permitted = (uint32_t)x->cap_permitted;
    data[1].permitted = (uint32_t)(x->cap_permitted >> 32);
    data[0].inheritable = (uint32_t)x->cap_inheritable;
    data[1].inheritable = (uint32_t)(x->cap_inheritable >> 32);
    return (int)syscall(SYS_capset, &hdr, data);
}

int pyoci_exec(const struct pyoci_exec *x, const char **stage)
{
#define FAIL(s)        \
    do {               \
        *stage = (s);  \
        return -1;     \
    } while (0)
    int c;
    if (x->seccomp_filter && !x->no_new_privs && load_seccomp(x) < 0)
        FAIL("seccomp");
    if (x->caps) {
        for (c = 0; c <= x->cap_last && c < 64; c++)
            if (!(x->cap_bounding & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
                errno != EINVAL)
                FAIL("drop bounding capabilities");
    }
    if (x->change_ids) {
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            FAIL("keepcaps");
        if (x->ngroups >= 0 && setgroups((size_t)x->ngroups, (const gid_t *)x->groups) < 0)
            FAIL("setgroups");
        if (setresgid(x->gid, x->gid, x->gid) < 0)
            FAIL("setresgid");
        if (setresuid(x->uid, x->uid, x->uid) < 0)
            FAIL("setresuid");
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
            FAIL("keepcaps");
    }
    if (x->caps) {
        if (set_caps(x) < 0)
            FAIL("capset");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
            FAIL("clear ambient capabilities");
        for (c = 0; c <= x->cap_last && c < 64; c++)
            if ((x->cap_ambient & (1ULL << c)) &&
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
                FAIL("raise ambient capabilities");
    }
    if (x->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        FAIL("no_new_privs");
    if (x->seccomp_filter && x->no_new_privs && load_seccomp(x) < 0)
        FAIL("seccomp");
    if (x->umask >= 0)
        umask((mode_t)x->umask);
    for (c = 1; c < NSIG; c++)
        if (c != SIGKILL && c != SIGSTOP)
            signal(c, SIG_DFL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    if (pyoci_close_range(3 + (unsigned)x->keep_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        /* Old kernels: walk the table instead. */
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3 + x->keep_fds; fd < max; fd++)
            fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    }
    if (x->trampoline_fd >= 0) {
        /* /proc/self/exe becomes the sealed memfd, never the host's interpreter. */
        syscall(SYS_execveat, x->trampoline_fd, "", x->trampoline_argv, x->envp, AT_EMPTY_PATH);
        /* A seccomp profile may deny execveat: fall back to the plain exec. */
    }
    execve(x->path, x->argv, x->envp);
    FAIL("exec");
#undef FAIL
}

#include <sys/vfs.h>
long pyoci_statfs_type(const char *path)
{
    struct statfs st;
    if (statfs(path, &st) < 0)
        return -1;
    return (long)st.f_type;
}

#include <linux/keyctl.h>
int pyoci_join_session_keyring(const char *name)
{
    return (int)syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0);
}
