/*
 * probe: a tiny static program that runs inside a container and reports what
 * the container sees, so integration tests can assert on the environment the
 * runtime built rather than on what the runtime claims it built.
 *
 * Build: gcc -static -O2 -Wall -Werror -o probe probe.c
 *
 * It is static so it works in any rootfs (no loader, no libc in the image),
 * and it avoids heap allocation in the reporting paths so that a tight rlimit
 * or memory cgroup cannot change what it prints.
 *
 * Output conventions (all sub-commands):
 *   - success: plain text on stdout, exit 0;
 *   - failure: one line on stderr, exit 1.  Commands that test whether the
 *     kernel allows an operation (mkdir, write, touch, kill) print exactly
 *     "errno=<n>" so seccomp/readonly tests can compare the number; the rest
 *     print "probe: <context>: <strerror> (errno=<n>)".
 *   - usage errors exit 2.
 *
 * Sub-commands:
 *   id                 uid=0 gid=0 groups=0,10   (real ids, supplementary groups)
 *   euid               euid=0 egid=0             (effective ids)
 *   umask              0022
 *   pid | ppid         a decimal pid
 *   ps                 "<pid> <comm>" for every /proc entry, sorted by pid
 *   hostname           nodename from uname
 *   domainname         domainname from uname
 *   cat FILE...        file contents
 *   ls DIR             sorted names, one per line (no . and ..)
 *   stat PATH          type=<file|dir|link|chr|blk|fifo|sock> mode=0755 uid=0 gid=0 rdev=1:3
 *                      (lstat; mode includes the setuid/setgid/sticky bits)
 *   readlink PATH      the link target
 *   mounts             "<mountpoint> <fstype> <mount-opts> <super-opts> <propagation>"
 *                      from /proc/self/mountinfo; propagation is the optional
 *                      fields joined by "," (e.g. shared:5) or "private"
 *   fds                "<fd> <target>" for every open fd except the listing one
 *   ns                 "<name> <target>" for every /proc/self/ns entry, sorted
 *   caps               the CapInh/CapPrm/CapEff/CapBnd/CapAmb/NoNewPrivs/Seccomp
 *                      lines of /proc/self/status, as "Name:\tvalue"
 *   status             all of /proc/self/status
 *   syscall NR         syscall(NR, 0, ...): "ret=<n>", or "errno=<n>" on stderr
 *   env                environment, one per line
 *   cwd                getcwd()
 *   rlimit NAME        "<soft> <hard>" (NOFILE or RLIMIT_NOFILE; "unlimited")
 *   mkdir PATH         mkdir(PATH, 0755)
 *   write PATH TEXT    create/truncate PATH and write TEXT (no newline added)
 *   touch PATH         create PATH if missing
 *   sleep SECONDS      nanosleep, resumed after signals; "inf" sleeps forever
 *   exit N             exit with status N
 *   kill PID SIG       kill(2); SIG is a number, TERM or SIGTERM
 *   signals            the SigIgn and SigBlk lines of /proc/self/status
 *   trap [SECONDS]     catch HUP INT QUIT USR1 USR2 TERM, print "ready", then
 *                      "signal <n>" for the first one that arrives (exit 0),
 *                      or exit 1 after SECONDS (default: wait forever).  A pid 1
 *                      ignores signals it has no handler for, so kill tests need this.
 *   tty                ttyname(0) or "not a tty"
 *   oom                /proc/self/oom_score_adj
 *   sysctl KEY         /proc/sys value for net.ipv4.ip_forward or net/ipv4/ip_forward
 *   echo ARGS...       ARGS joined by spaces
 *   nice               getpriority(PRIO_PROCESS, 0)
 *   sched              "policy=<n> priority=<n>"
 *   affinity           allowed CPUs as a list, e.g. 0-3,6
 *   personality        personality(0xffffffff) in hex
 *   hog MIB [SECONDS]  map and touch MIB MiB, print "hog=<n>", hold SECONDS
 *   forkbomb N         fork up to N sleeping children, print
 *                      "forked=<k> errno=<e>" (errno 0 if all succeeded), then
 *                      kill and reap them
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENTRIES 8192
#define NAME_LEN 256
#define LINE_LEN 4096

/* Static storage so listing a directory never depends on the heap. */
static char names[MAX_ENTRIES][NAME_LEN];
static char *name_ptrs[MAX_ENTRIES];
static pid_t children[65536];

static int fail(const char *ctx)
{
    int e = errno;
    fprintf(stderr, "probe: %s: %s (errno=%d)\n", ctx, strerror(e), e);
    return 1;
}

static int fail_errno(void)
{
    fprintf(stderr, "errno=%d\n", errno);
    return 1;
}

static int usage(const char *msg)
{
    fprintf(stderr, "probe: usage: %s\n", msg);
    return 2;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copy a file to stdout; stdio is flushed first so output stays ordered. */
static int cat_file(const char *path)
{
    char buf[LINE_LEN];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(path);
    fflush(stdout);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return fail(path);
        }
        if (n == 0)
            break;
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0) {
            close(fd);
            return fail("stdout");
        }
    }
    close(fd);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_num(const void *a, const void *b)
{
    long x = strtol(*(char *const *)a, NULL, 10);
    long y = strtol(*(char *const *)b, NULL, 10);
    return (x > y) - (x < y);
}

/*
 * Read the names in a directory into the static table, sorted.  Returns the
 * count or -1.  `skip_fd` lets `fds` hide the descriptor opendir used.
 */
static int list_dir(const char *path, int numeric_only, int (*cmp)(const void *, const void *),
                    int *dir_fd_out)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    if (dir_fd_out)
        *dir_fd_out = dirfd(d);
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (numeric_only && !isdigit((unsigned char)de->d_name[0]))
            continue;
        if (n >= MAX_ENTRIES)
            break;
        snprintf(names[n], NAME_LEN, "%s", de->d_name);
        name_ptrs[n] = names[n];
        n++;
    }
    closedir(d);
    qsort(name_ptrs, (size_t)n, sizeof name_ptrs[0], cmp);
    return n;
}

static int cmd_id(void)
{
    gid_t groups[NGROUPS_MAX];
    int n = getgroups(NGROUPS_MAX, groups);
    if (n < 0)
        return fail("getgroups");
    printf("uid=%u gid=%u groups=", (unsigned)getuid(), (unsigned)getgid());
    for (int i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", (unsigned)groups[i]);
    printf("\n");
    return 0;
}

static int cmd_ps(void)
{
    char path[64], comm[NAME_LEN];
    int n = list_dir("/proc", 1, cmp_num, NULL);
    if (n < 0)
        return fail("/proc");
    for (int i = 0; i < n; i++) {
        FILE *f;
        snprintf(path, sizeof path, "/proc/%s/comm", name_ptrs[i]);
        f = fopen(path, "re");
        if (!f)
            continue; /* the process exited between readdir and open */
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = '\0';
            printf("%s %s\n", name_ptrs[i], comm);
        }
        fclose(f);
    }
    return 0;
}

static int cmd_ls(const char *dir)
{
    int n = list_dir(dir, 0, cmp_str, NULL);
    if (n < 0)
        return fail(dir);
    for (int i = 0; i < n; i++)
        printf("%s\n", name_ptrs[i]);
    return 0;
}

static const char *type_name(mode_t m)
{
    switch (m & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "link";
    case S_IFCHR: return "chr";
    case S_IFBLK: return "blk";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "sock";
    default: return "unknown";
    }
}

static int cmd_stat(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return fail(path);
    printf("type=%s mode=%04o uid=%u gid=%u rdev=%u:%u\n", type_name(st.st_mode),
           (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
           major(st.st_rdev), minor(st.st_rdev));
    return 0;
}

static int cmd_readlink(const char *path)
{
    char buf[PATH_MAX];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return fail(path);
    buf[n] = '\0';
    printf("%s\n", buf);
    return 0;
}

/*
 * mountinfo: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
 * Fields after the 6th up to "-" are optional propagation tags.
 */
static int cmd_mounts(void)
{
    static char line[LINE_LEN * 4];
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return fail("/proc/self/mountinfo");
    while (fgets(line, sizeof line, f)) {
        char *fields[64];
        int nf = 0, dash = -1;
        char *save = NULL;
        char prop[LINE_LEN];
        size_t plen = 0;
        for (char *tok = strtok_r(line, " \n", &save); tok && nf < 64;
             tok = strtok_r(NULL, " \n", &save)) {
            if (dash < 0 && nf >= 6 && !strcmp(tok, "-"))
                dash = nf;
            fields[nf++] = tok;
        }
        if (dash < 0 || nf < dash + 4)
            continue;
        prop[0] = '\0';
        for (int i = 6; i < dash; i++) {
            int w = snprintf(prop + plen, sizeof prop - plen, "%s%s", plen ? "," : "",
                             fields[i]);
            if (w < 0 || (size_t)w >= sizeof prop - plen)
                break;
            plen += (size_t)w;
        }
        printf("%s %s %s %s %s\n", fields[4], fields[dash + 1], fields[5], fields[dash + 3],
               plen ? prop : "private");
    }
    fclose(f);
    return 0;
}

static int cmd_fds(void)
{
    char path[64], target[PATH_MAX];
    int listing_fd = -1;
    /* opendir's own fd is closed by list_dir, but it is still listed once. */
    int n = list_dir("/proc/self/fd", 1, cmp_num, &listing_fd);
    if (n < 0)
        return fail("/proc/self/fd");
    for (int i = 0; i < n; i++) {
        int fd = atoi(name_ptrs[i]);
        ssize_t len;
        if (fd == listing_fd)
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        len = readlink(path, target, sizeof target - 1);
        if (len < 0)
            continue;
        target[len] = '\0';
        printf("%d %s\n", fd, target);
    }
    return 0;
}

static int cmd_ns(void)
{
    char path[64], target[PATH_MAX];
    int n = list_dir("/proc/self/ns", 0, cmp_str, NULL);
    if (n < 0)
        return fail("/proc/self/ns");
    for (int i = 0; i < n; i++) {
        ssize_t len;
        snprintf(path, sizeof path, "/proc/self/ns/%s", name_ptrs[i]);
        len = readlink(path, target, sizeof target - 1);
        if (len < 0)
            return fail(path);
        target[len] = '\0';
        printf("%s %s\n", name_ptrs[i], target);
    }
    return 0;
}

/* Print the /proc/self/status lines whose key is in `keys` (NULL = all). */
static int status_lines(const char *const *keys)
{
    char line[LINE_LEN];
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return fail("/proc/self/status");
    while (fgets(line, sizeof line, f)) {
        size_t klen = strcspn(line, ":");
        int want = keys == NULL;
        for (const char *const *k = keys; k && *k && !want; k++)
            want = strlen(*k) == klen && !strncmp(line, *k, klen);
        if (want)
            fputs(line, stdout);
    }
    fclose(f);
    return 0;
}

static const struct {
    const char *name;
    int res;
} rlimits[] = {
    {"CPU", RLIMIT_CPU},         {"FSIZE", RLIMIT_FSIZE},     {"DATA", RLIMIT_DATA},
    {"STACK", RLIMIT_STACK},     {"CORE", RLIMIT_CORE},       {"RSS", RLIMIT_RSS},
    {"NPROC", RLIMIT_NPROC},     {"NOFILE", RLIMIT_NOFILE},   {"MEMLOCK", RLIMIT_MEMLOCK},
    {"AS", RLIMIT_AS},           {"LOCKS", RLIMIT_LOCKS},     {"SIGPENDING", RLIMIT_SIGPENDING},
    {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"NICE", RLIMIT_NICE},     {"RTPRIO", RLIMIT_RTPRIO},
    {"RTTIME", RLIMIT_RTTIME},
};

static void print_rlim(rlim_t v)
{
    if (v == RLIM_INFINITY)
        printf("unlimited");
    else
        printf("%llu", (unsigned long long)v);
}

static int cmd_rlimit(const char *name)
{
    struct rlimit rl;
    if (!strncmp(name, "RLIMIT_", 7))
        name += 7;
    for (size_t i = 0; i < sizeof rlimits / sizeof rlimits[0]; i++) {
        if (strcasecmp(name, rlimits[i].name))
            continue;
        if (getrlimit(rlimits[i].res, &rl) < 0)
            return fail("getrlimit");
        print_rlim(rl.rlim_cur);
        printf(" ");
        print_rlim(rl.rlim_max);
        printf("\n");
        return 0;
    }
    fprintf(stderr, "probe: unknown rlimit %s\n", name);
    return 1;
}

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},   {"BUS", SIGBUS},   {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},   {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
    {"CONT", SIGCONT}, {"STOP", SIGSTOP},   {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"SYS", SIGSYS},
};

static int parse_signal(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end)
        return (int)v;
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (!strcasecmp(s, signals[i].name))
            return signals[i].sig;
    return -1;
}

/* Sleep for `secs` (may be fractional or infinite), resuming after signals. */
static void sleep_for(double secs)
{
    if (isinf(secs)) {
        for (;;)
            pause();
    }
    struct timespec ts, rem;
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &rem) < 0 && errno == EINTR)
        ts = rem;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v < 0 || isnan(v))
        return -1;
    *out = v;
    return 0;
}

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    caught = sig;
}

static int cmd_trap(int argc, char **argv)
{
    static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM};
    double secs = INFINITY;
    struct sigaction sa;
    struct timespec start, now;
    if (argc > 2 && parse_seconds(argv[2], &secs) < 0)
        return usage("trap [SECONDS]");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return fail("sigaction");
    printf("ready\n");
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!caught) {
        if (!isinf(secs)) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >= secs) {
                fprintf(stderr, "probe: trap: no signal within %g seconds\n", secs);
                return 1;
            }
        }
        sleep_for(0.05);
    }
    printf("signal %d\n", (int)caught);
    return 0;
}

static int cmd_sysctl(const char *key)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "/proc/sys/%s", key);
    if (n < 0 || (size_t)n >= sizeof path)
        return usage("sysctl KEY");
    for (char *p = path + strlen("/proc/sys/"); *p; p++)
        if (*p == '.')
            *p = '/';
    return cat_file(path);
}

static int cmd_affinity(void)
{
    cpu_set_t set;
    int first = 1;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return fail("sched_getaffinity");
    for (int i = 0; i < CPU_SETSIZE; i++) {
        int j = i;
        if (!CPU_ISSET(i, &set))
            continue;
        while (j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, &set))
            j++;
        if (j == i)
            printf("%s%d", first ? "" : ",", i);
        else
            printf("%s%d-%d", first ? "" : ",", i, j);
        first = 0;
        i = j;
    }
    printf("\n");
    return 0;
}

static int cmd_hog(int argc, char **argv)
{
    const size_t chunk = 1 << 20;
    long mib, done = 0;
    double hold = 0;
    if (argc < 3 || (mib = strtol(argv[2], NULL, 10)) <= 0)
        return usage("hog MIB [SECONDS]");
    if (argc > 3 && parse_seconds(argv[3], &hold) < 0)
        return usage("hog MIB [SECONDS]");
    for (; done < mib; done++) {
        /* mmap per MiB so a partial failure still reports how far we got. */
        char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            break;
        for (size_t off = 0; off < chunk; off += 4096)
            p[off] = (char)(off | 1);
    }
    printf("hog=%ld\n", done);
    fflush(stdout);
    if (hold > 0)
        sleep_for(hold);
    return done == mib ? 0 : 1;
}

static int cmd_forkbomb(const char *arg)
{
    long want = strtol(arg, NULL, 10);
    long forked = 0;
    int err = 0;
    pid_t parent = getpid();
    if (want <= 0 || want > (long)(sizeof children / sizeof children[0]))
        return usage("forkbomb N (1..65536)");
    fflush(stdout);
    for (; forked < want; forked++) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            /* Die with the parent so a killed probe leaves nothing behind. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            for (;;)
                pause();
        }
        children[forked] = pid;
    }
    printf("forked=%ld errno=%d\n", forked, err);
    fflush(stdout);
    for (long i = 0; i < forked; i++)
        kill(children[i], SIGKILL);
    for (long i = 0; i < forked; i++)
        while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
            ;
    return 0;
}

static int cmd_write(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail_errno();
    if (write_all(fd, text, strlen(text)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return fail_errno();
    }
    if (close(fd) < 0)
        return fail_errno();
    return 0;
}

static int cmd_touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail_errno();
    close(fd);
    return 0;
}

/* notify WAIT_PATH MSG: once WAIT_PATH exists, send MSG to $NOTIFY_SOCKET (sd_notify), sleep. */
static int cmd_notify(const char *wait_path, const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;
    if (!path || strlen(path) >= sizeof(addr.sun_path)) {
        printf("notify=no-socket\n");
        return 1;
    }
    printf("notify_socket=%s\n", path);
    fflush(stdout);
    while (access(wait_path, F_OK) != 0)
        usleep(20000);
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        printf("notify_errno=%d\n", errno);
        return 1;
    }
    for (;;)
        pause();
}

static int run(int argc, char **argv)
{
    const char *cmd = argv[1];
    char buf[PATH_MAX];
    struct utsname u;

    if (!strcmp(cmd, "id"))
        return cmd_id();
    if (!strcmp(cmd, "euid")) {
        printf("euid=%u egid=%u\n", (unsigned)geteuid(), (unsigned)getegid());
        return 0;
    }
    if (!strcmp(cmd, "umask")) {
        mode_t m = umask(0);
        umask(m);
        printf("%04o\n", (unsigned)m);
        return 0;
    }
    if (!strcmp(cmd, "pid")) {
        printf("%d\n", (int)getpid());
        return 0;
    }
    if (!strcmp(cmd, "ppid")) {
        printf("%d\n", (int)getppid());
        return 0;
    }
    if (!strcmp(cmd, "ps"))
        return cmd_ps();
    if (!strcmp(cmd, "hostname") || !strcmp(cmd, "domainname")) {
        if (uname(&u) < 0)
            return fail("uname");
        printf("%s\n", cmd[0] == 'h' ? u.nodename : u.domainname);
        return 0;
    }
    if (!strcmp(cmd, "cat")) {
        int rc = 0;
        if (argc < 3)
            return usage("cat FILE...");
        for (int i = 2; i < argc; i++)
            rc |= cat_file(argv[i]);
        return rc;
    }
    if (!strcmp(cmd, "ls"))
        return argc < 3 ? usage("ls DIR") : cmd_ls(argv[2]);
    if (!strcmp(cmd, "stat"))
        return argc < 3 ? usage("stat PATH") : cmd_stat(argv[2]);
    if (!strcmp(cmd, "readlink"))
        return argc < 3 ? usage("readlink PATH") : cmd_readlink(argv[2]);
    if (!strcmp(cmd, "mounts"))
        return cmd_mounts();
    if (!strcmp(cmd, "fds"))
        return cmd_fds();
    if (!strcmp(cmd, "ns"))
        return cmd_ns();
    if (!strcmp(cmd, "caps")) {
        static const char *const keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                           "NoNewPrivs", "Seccomp", NULL};
        return status_lines(keys);
    }
    if (!strcmp(cmd, "status"))
        return status_lines(NULL);
    if (!strcmp(cmd, "signals")) {
        static const char *const keys[] = {"SigIgn", "SigBlk", NULL};
        return status_lines(keys);
    }
    if (!strcmp(cmd, "env")) {
        extern char **environ;
        for (char **e = environ; e && *e; e++)
            printf("%s\n", *e);
        return 0;
    }
    if (!strcmp(cmd, "cwd")) {
        if (!getcwd(buf, sizeof buf))
            return fail("getcwd");
        printf("%s\n", buf);
        return 0;
    }
    if (!strcmp(cmd, "rlimit"))
        return argc < 3 ? usage("rlimit NAME") : cmd_rlimit(argv[2]);
    if (!strcmp(cmd, "mkdir")) {
        if (argc < 3)
            return usage("mkdir PATH");
        return mkdir(argv[2], 0755) < 0 ? fail_errno() : 0;
    }
    if (!strcmp(cmd, "syscall")) {
        long r;
        if (argc < 3)
            return usage("syscall NR");
        r = syscall(strtol(argv[2], NULL, 0), 0, 0, 0, 0, 0, 0);
        if (r < 0)
            return fail_errno();
        printf("ret=%ld\n", r);
        return 0;
    }
    if (!strcmp(cmd, "write"))
        return argc < 4 ? usage("write PATH TEXT") : cmd_write(argv[2], argv[3]);
    if (!strcmp(cmd, "notify"))
        return argc < 4 ? usage("notify WAIT_PATH MSG") : cmd_notify(argv[2], argv[3]);
    if (!strcmp(cmd, "touch"))
        return argc < 3 ? usage("touch PATH") : cmd_touch(argv[2]);
    if (!strcmp(cmd, "sleep")) {
        double secs;
        if (argc < 3 || parse_seconds(argv[2], &secs) < 0)
            return usage("sleep SECONDS");
        sleep_for(secs);
        return 0;
    }
    if (!strcmp(cmd, "exit")) {
        if (argc < 3)
            return usage("exit N");
        fflush(stdout);
        _exit(atoi(argv[2]) & 0xff);
    }
    if (!strcmp(cmd, "kill")) {
        int sig;
        if (argc < 4 || (sig = parse_signal(argv[3])) < 0)
            return usage("kill PID SIG");
        return kill((pid_t)atoi(argv[2]), sig) < 0 ? fail_errno() : 0;
    }
    if (!strcmp(cmd, "trap"))
        return cmd_trap(argc, argv);
    if (!strcmp(cmd, "tty")) {
        const char *name = ttyname(0);
        printf("%s\n", name ? name : "not a tty");
        return 0;
    }
    if (!strcmp(cmd, "oom"))
        return cat_file("/proc/self/oom_score_adj");
    if (!strcmp(cmd, "sysctl"))
        return argc < 3 ? usage("sysctl KEY") : cmd_sysctl(argv[2]);
    if (!strcmp(cmd, "echo")) {
        for (int i = 2; i < argc; i++)
            printf("%s%s", i > 2 ? " " : "", argv[i]);
        printf("\n");
        return 0;
    }
    if (!strcmp(cmd, "nice")) {
        int prio;
        errno = 0;
        prio = getpriority(PRIO_PROCESS, 0);
        if (prio == -1 && errno)
            return fail("getpriority");
        printf("%d\n", prio);
        return 0;
    }
    if (!strcmp(cmd, "sched")) {
        struct sched_param sp;
        int policy = sched_getscheduler(0);
        if (policy < 0 || sched_getparam(0, &sp) < 0)
            return fail("sched_getscheduler");
        printf("policy=%d priority=%d\n", policy, sp.sched_priority);
        return 0;
    }
    if (!strcmp(cmd, "affinity"))
        return cmd_affinity();
    if (!strcmp(cmd, "personality")) {
        int p = personality(0xffffffff);
        if (p < 0)
            return fail("personality");
        printf("0x%x\n", (unsigned)p);
        return 0;
    }
    if (!strcmp(cmd, "hog"))
        return cmd_hog(argc, argv);
    if (!strcmp(cmd, "forkbomb"))
        return argc < 3 ? usage("forkbomb N") : cmd_forkbomb(argv[2]);
    fprintf(stderr, "probe: unknown command %s\n", cmd);
    return 2;
}

int main(int argc, char **argv)
{
    int rc;
    if (argc < 2)
        return usage("probe COMMAND [ARGS...]");
    rc = run(argc, argv);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "probe: stdout: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}
