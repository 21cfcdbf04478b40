/* bpf(2) for cgroup v2 device programs: load, attach, query, detach.
 * The instructions themselves are encoded in Python (pyoci/cgroups/devices_bpf.py). */
#ifndef PYOCI_BPF_H
#define PYOCI_BPF_H
#include <stdint.h>
#include <linux/bpf.h>

int pyoci_bpf_prog_load(uint32_t prog_type, const void *insns, uint32_t insn_cnt,
                        const char *license, char *log_buf, uint32_t log_size);
int pyoci_bpf_prog_attach(int prog_fd, int target_fd, uint32_t attach_type, uint32_t flags);
int pyoci_bpf_prog_detach(int prog_fd, int target_fd, uint32_t attach_type);
int pyoci_bpf_prog_query(int target_fd, uint32_t attach_type, uint32_t *attach_flags,
                         uint32_t *prog_ids, uint32_t *prog_cnt);
int pyoci_bpf_prog_get_fd_by_id(uint32_t id);
int pyoci_bpf_prog_id(int prog_fd, uint32_t *id);
#endif
