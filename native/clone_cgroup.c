/* A fork that lands the child in its cgroup atomically (Linux 5.7+, cgroup v2),
 * and/or in a new pid namespace (so no second fork is needed for one).
 *
 * The child keeps running Python, so this does what os.fork() does around the
 * raw clone3: PyOS_BeforeFork (at-fork handlers, import lock), then
 * PyOS_AfterFork_Child or _Parent. cffi releases the GIL around calls, so it is
 * taken back first. Returns the pid, 0 in the child, or -1 with errno (ENOSYS,
 * EINVAL...) so the caller can fall back to fork + cgroup.procs.
 */
#define _GNU_SOURCE
#include <Python.h>
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clone_cgroup.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

struct clone_args_compat {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

long pyoci_fork_into_cgroup(int cgroup_fd)
{
    return pyoci_fork_clone3(cgroup_fd, 0);
}

/* The same fork, with clone3 namespace flags (CLONE_NEWPID): the child is born in
 * them. cgroup_fd < 0 means no CLONE_INTO_CGROUP. */
long pyoci_fork_clone3(int cgroup_fd, unsigned long long ns_flags)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    struct clone_args_compat args;
    memset(&args, 0, sizeof(args));
    args.flags = ns_flags;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    args.exit_signal = SIGCHLD;
    PyOS_BeforeFork();
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    int saved = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    PyGILState_Release(gil);
    errno = saved;
    return pid;
}
