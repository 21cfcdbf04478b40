/* Seccomp shims that are not plain libseccomp calls.
 *
 * libseccomp's action macros with a payload (SCMP_ACT_ERRNO(x), SCMP_ACT_TRACE(x))
 * are function-like, so cffi cannot bind them directly; the kernel-flag probe and
 * the loader are raw syscalls that libseccomp 2.5 does not expose without also
 * loading a filter into the calling process.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/filter.h>

#include <seccomp.h> /* native/seccomp.h, which pulls in libseccomp's */

uint32_t pyoci_scmp_act_errno(uint32_t errno_ret)
{
    return SCMP_ACT_ERRNO(errno_ret);
}

uint32_t pyoci_scmp_act_trace(uint32_t msg_num)
{
    return SCMP_ACT_TRACE(msg_num);
}

/* Ask the kernel whether it knows the filter flags, without installing anything:
 * with a NULL program the kernel validates the flags first (EINVAL if unknown)
 * and only then fails to copy the program (EFAULT). libseccomp probes the same way. */
int pyoci_seccomp_flag_supported(unsigned int flags)
{
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL);
    if (rc >= 0) /* cannot happen with a NULL program, but never leak a listener fd */
        close((int)rc);
    return rc < 0 && errno == EFAULT;
}

/* Test helper only: install a filter in the calling process the way the final
 * exec step does, with no_new_privs so it works without CAP_SYS_ADMIN too.
 * Returns the listener fd (NEW_LISTENER), 0, or -1 with errno. */
int pyoci_seccomp_load(const void *bpf, unsigned int len, unsigned int flags)
{
    struct sock_fprog prog = {
        .len = (unsigned short)len,
        .filter = (struct sock_filter *)bpf,
    };
    if (len == 0 || len > 0xffff) {
        errno = EINVAL;
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}
