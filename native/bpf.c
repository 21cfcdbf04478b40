/* bpf(2) shims: glibc has no wrapper, and union bpf_attr is easier to fill in C.
 * Each returns what the syscall returns (an fd, 0, or -1 with errno). */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf.h"

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int pyoci_bpf_prog_load(uint32_t prog_type, const void *insns, uint32_t insn_cnt,
                        const char *license, char *log_buf, uint32_t log_size)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = prog_type;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = insn_cnt;
    attr.license = (uint64_t)(uintptr_t)license;
    if (log_buf != NULL && log_size > 0) {
        attr.log_buf = (uint64_t)(uintptr_t)log_buf;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    return sys_bpf(BPF_PROG_LOAD, &attr);
}

int pyoci_bpf_prog_attach(int prog_fd, int target_fd, uint32_t attach_type, uint32_t flags)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)target_fd;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = attach_type;
    attr.attach_flags = flags;
    return sys_bpf(BPF_PROG_ATTACH, &attr);
}

int pyoci_bpf_prog_detach(int prog_fd, int target_fd, uint32_t attach_type)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)target_fd;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = attach_type;
    return sys_bpf(BPF_PROG_DETACH, &attr);
}

/* *prog_cnt: in, the room in prog_ids; out, how many programs are attached. */
int pyoci_bpf_prog_query(int target_fd, uint32_t attach_type, uint32_t *attach_flags,
                         uint32_t *prog_ids, uint32_t *prog_cnt)
{
    union bpf_attr attr;
    int rc;
    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = (uint32_t)target_fd;
    attr.query.attach_type = attach_type;
    attr.query.prog_ids = (uint64_t)(uintptr_t)prog_ids;
    attr.query.prog_cnt = *prog_cnt;
    rc = sys_bpf(BPF_PROG_QUERY, &attr);
    if (rc == 0 || errno == ENOSPC) {
        *prog_cnt = attr.query.prog_cnt;
        if (attach_flags != NULL)
            *attach_flags = attr.query.attach_flags;
    }
    return rc;
}

int pyoci_bpf_prog_get_fd_by_id(uint32_t id)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_id = id;
    return sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}

int pyoci_bpf_prog_id(int prog_fd, uint32_t *id)
{
    struct bpf_prog_info info;
    union bpf_attr attr;
    memset(&info, 0, sizeof(info));
    memset(&attr, 0, sizeof(attr));
    attr.info.bpf_fd = (uint32_t)prog_fd;
    attr.info.info_len = sizeof(info);
    attr.info.info = (uint64_t)(uintptr_t)&info;
    if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0)
        return -1;
    *id = info.id;
    return 0;
}
