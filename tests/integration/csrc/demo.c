/* demo: the node sandbox tests' workload, built with gcc -static into an image of its own.
 *
 *   demo serve PORT     print a line, then answer every TCP connection on PORT with
 *                       "hello from demo\n" (until SIGTERM)
 *   demo exit N         exit with status N (exec probes: 0 passes, anything else fails)
 *   demo connect IP PORT  exit 0 when a TCP connection to IP:PORT opens (within 5 s)
 *   demo cat FILE       print FILE (the image has no shell and no cat)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int serve(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("demo: listen");
        return 1;
    }
    printf("demo listening on port %d\n", port);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        const char *msg = "hello from demo\n";
        ssize_t w = write(c, msg, strlen(msg));
        (void)w;
        close(c);
    }
}

static int connect_to(const char *ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
        return 2;
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("demo: connect");
        return 1;
    }
    printf("connected to %s:%d\n", ip, port);
    return 0;
}

static int cat(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror("demo: cat");
        return 1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    signal(SIGTERM, on_term); /* PID 1 of its container: the default action is ignored */
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return connect_to(argv[2], atoi(argv[3]));
    if (argc == 3 && strcmp(argv[1], "cat") == 0)
        return cat(argv[2]);
    fprintf(stderr, "usage: demo serve PORT | exit N | connect IP PORT | cat FILE\n");
    return 2;
}
