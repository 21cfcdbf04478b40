/* Thin syscall shims and the final exec step of pyoci. Everything else is Python. */
#ifndef PYOCI_NATIVE_H
#define PYOCI_NATIVE_H
#include <stddef.h>
#include <stdint.h>

struct pyoci_exec {
    const char *path;
    char *const *argv;
    char *const *envp;
    int change_ids;
    unsigned int uid, gid;
    int ngroups; /* -1: leave supplementary groups alone */
    const unsigned int *groups;
    int umask; /* -1: leave */
    int caps;  /* 0: leave capabilities as they are */
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int cap_last;
    int no_new_privs;
    const void *seccomp_filter; /* struct sock_filter[] */
    unsigned int seccomp_len;
    unsigned int seccomp_flags;
    int seccomp_notify_sock;     /* -1, or a connected socket for the listener fd */
    const char *seccomp_notify_msg;
    size_t seccomp_notify_msg_len;
    int keep_fds;                /* fds above 2 + keep_fds are closed on exec */
    int trampoline_fd;           /* -1, or a sealed memfd: exec it with argv = [path, argv...] */
    char *const *trampoline_argv;
};

int pyoci_exec(const struct pyoci_exec *x, const char **stage);
int pyoci_unshare(int flags);
int pyoci_setns(int fd, int nstype);
int pyoci_ns_type(int fd);
int pyoci_mount(const char *source, const char *target, const char *fstype,
                unsigned long flags, const char *data);
int pyoci_umount2(const char *target, int flags);
int pyoci_pivot_root(const char *new_root, const char *put_old);
int pyoci_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int pyoci_mount_setattr(int dirfd, const char *path, unsigned int flags,
                        uint64_t attr_set, uint64_t attr_clr, uint64_t propagation,
                        uint64_t userns_fd);
int pyoci_open_tree(int dirfd, const char *path, unsigned int flags);
int pyoci_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
                     const char *to_path, unsigned int flags);
int pyoci_sethostname(const char *name, size_t len);
int pyoci_setdomainname(const char *name, size_t len);
int pyoci_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                unsigned long a5);
int pyoci_personality(unsigned long persona);
int pyoci_setgroups(int n, const unsigned int *groups);
int pyoci_close_range(unsigned int first, unsigned int last, unsigned int flags);
int pyoci_cap_last(void);
long pyoci_statfs_type(const char *path);
int pyoci_join_session_keyring(const char *name);
#endif
