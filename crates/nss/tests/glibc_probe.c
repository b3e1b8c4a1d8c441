/* Drives libnss_kvnet.so.2 through glibc itself (crates/daemon/tests/nss.rs builds and
 * runs it in a private mount namespace):
 *   probe erange NAME      gethostbyname2_r with buffers of 0, 1, 2, ... bytes: ERANGE
 *                          until one is large enough, then the address
 *   probe time NAME N      mean microseconds of one getaddrinfo(NAME)
 *   probe threads NAME N   8 threads, N getaddrinfo(NAME) each: all must succeed */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *name;
static int rounds;

static int lookup(void) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(name, NULL, &hints, &res) != 0)
        return 1;
    freeaddrinfo(res);
    return 0;
}

static void *worker(void *arg) {
    long bad = 0;
    (void)arg;
    for (int i = 0; i < rounds; i++)
        bad += lookup();
    return (void *)bad;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 64;
    name = argv[2];
    rounds = argc > 3 ? atoi(argv[3]) : 1;
    if (!strcmp(argv[1], "erange")) {
        for (size_t len = 0; len < 4096; len++) {
            char *buf = malloc(len + 1);
            struct hostent h, *res = NULL;
            int herr = 0;
            int rc = gethostbyname2_r(name, AF_INET, &h, buf, len, &res, &herr);
            if (rc == 0 && res) {
                char a[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, h.h_addr_list[0], a, sizeof a);
                printf("ok %zu %s %s\n", len, h.h_name, a);
                free(buf);
                return 0;
            }
            free(buf);
            if (rc != ERANGE) {
                printf("rc %d h_errno %d at %zu\n", rc, herr, len);
                return 1;
            }
        }
        return 1;
    }
    if (!strcmp(argv[1], "time")) {
        struct timespec t0, t1;
        if (lookup())
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < rounds; i++)
            if (lookup())
                return 1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
        printf("%.2f\n", us / rounds);
        return 0;
    }
    if (!strcmp(argv[1], "threads")) {
        pthread_t t[8];
        long bad = 0;
        for (int i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, worker, NULL);
        for (int i = 0; i < 8; i++) {
            void *r;
            pthread_join(t[i], &r);
            bad += (long)r;
        }
        printf("failed %ld\n", bad);
        return bad != 0;
    }
    return 64;
}
