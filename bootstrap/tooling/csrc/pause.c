/* pause: the pod sandbox's first process (the "infra container" of every pod).
 *
 * It holds the pod's namespaces open, so it does nothing but wait: it sleeps until
 * SIGTERM or SIGINT (then exits 0) and reaps any child re-parented to it (it is PID 1 of
 * the pod when the pod shares its PID namespace). "pause -v" prints its version.
 * Written for cluster-secrets-bootstrap's node sandbox; built with gcc -static.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "1.0"

static volatile sig_atomic_t stop;

static void on_stop(int sig) { (void)sig; stop = 1; }

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        printf("pause %s (cluster-secrets-bootstrap)\n", VERSION);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    /* blocked outside sigsuspend: no signal slips between the test and the wait */
    sigset_t blocked, none;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGCHLD);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigemptyset(&none);
    while (!stop)
        sigsuspend(&none);  /* returns after each handled signal */
    return 0;
}
