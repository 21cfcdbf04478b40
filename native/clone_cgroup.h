/* fork() straight into a cgroup with clone3(CLONE_INTO_CGROUP), the way os.fork() forks. */
#ifndef PYOCI_CLONE_CGROUP_H
#define PYOCI_CLONE_CGROUP_H
long pyoci_fork_into_cgroup(int cgroup_fd);
long pyoci_fork_clone3(int cgroup_fd, unsigned long long ns_flags);
#endif
