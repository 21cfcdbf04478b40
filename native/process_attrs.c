/* Thin wrappers over sched_setattr(2), ioprio_set(2) and set_mempolicy(2). */
#define _GNU_SOURCE
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "process_attrs.h"

struct sched_attr_compat {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int pyoci_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice,
                        uint32_t priority, uint64_t runtime, uint64_t deadline, uint64_t period)
{
    struct sched_attr_compat a;
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.sched_policy = policy;
    a.sched_flags = flags;
    a.sched_nice = nice;
    a.sched_priority = priority;
    a.sched_runtime = runtime;
    a.sched_deadline = deadline;
    a.sched_period = period;
    return (int)syscall(SYS_sched_setattr, pid, &a, 0);
}

int pyoci_ioprio_set(int which, int who, int ioprio)
{
    return (int)syscall(SYS_ioprio_set, which, who, ioprio);
}

long pyoci_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}
