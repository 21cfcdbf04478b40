/* Scheduling, I/O priority and memory policy: syscalls glibc 2.36 doesn't wrap. */
#ifndef PYOCI_PROCESS_ATTRS_H
#define PYOCI_PROCESS_ATTRS_H
#include <stdint.h>
int pyoci_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice,
                        uint32_t priority, uint64_t runtime, uint64_t deadline, uint64_t period);
int pyoci_ioprio_set(int which, int who, int ioprio);
long pyoci_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
#endif
