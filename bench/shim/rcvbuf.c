/* LD_PRELOAD shim for load generators: every socket they open gets a receive buffer of
 * $RCVBUF_BYTES. This is what raising net.core.rmem_default would do, which the bench
 * cannot do here (/proc/sys is read-only). SO_RCVBUFFORCE needs CAP_NET_ADMIN (the bench
 * runs as root); SO_RCVBUF, capped at net.core.rmem_max, is the fallback. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol)
{
    static int (*real)(int, int, int);
    if (!real)
        real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    int fd = real(domain, type, protocol);
    const char *v = getenv("RCVBUF_BYTES");
    if (fd >= 0 && v) {
        int n = atoi(v);
        if (n > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &n, sizeof n) != 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
    }
    return fd;
}
