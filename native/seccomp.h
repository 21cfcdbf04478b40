/* Seccomp: libseccomp compiles the OCI profile in the parent; these shims cover
 * what libseccomp 2.5 cannot do without touching the calling process. */
#ifndef PYOCI_SECCOMP_H
#define PYOCI_SECCOMP_H
/* This file shadows libseccomp's <seccomp.h> on the -I native search path, so
 * pull the real one in from the next directory on that path. */
#include_next <seccomp.h>
#include <linux/seccomp.h>
#include <stdint.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

uint32_t pyoci_scmp_act_errno(uint32_t errno_ret);
uint32_t pyoci_scmp_act_trace(uint32_t msg_num);
int pyoci_seccomp_flag_supported(unsigned int flags);
int pyoci_seccomp_load(const void *bpf, unsigned int len, unsigned int flags);
#endif
