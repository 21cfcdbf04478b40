/* The pod sandbox's process for the CRI tests: holds the pod's namespaces open
 * and does nothing else. It is the pid 1 of the sandbox's PID namespace, so it
 * reaps whatever gets reparented to it, and it exits 0 on SIGINT/SIGTERM (a
 * pid 1 ignores signals it has no handler for, and StopPodSandbox sends
 * SIGTERM first). Built statically so the image needs nothing else. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = quit;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;)
        pause();
    return 1;
}
