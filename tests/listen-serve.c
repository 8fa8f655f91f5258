/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * listen-serve REPLY: serve on the sockets systemd passed (sd_listen_fds(3): fds from 3
 * on, LISTEN_FDS of them, when LISTEN_PID is this process), never on one of its own.
 * On a stream socket it answers each connection with one line, "REPLY NAME FDS NAMES"
 * (NAME: this socket's name in LISTEN_FDNAMES; FDS and NAMES: LISTEN_FDS and
 * LISTEN_FDNAMES as received), then closes it; on a datagram socket it answers each
 * datagram with "REPLY NAME " and the datagram.  Built static at test time, so it runs
 * in the busybox rootfs of the pods, which has no libsystemd.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define LISTEN_FDS_START 3
#define MAX_FDS 16

static const char *name_of(const char *names, int index, char *buf, size_t size) {
        /* The index-th of the colon-separated names, or "?" */
        const char *start = names ? names : "";
        for (int i = 0; i < index && start; i++) {
                start = strchr(start, ':');
                if (start)
                        start++;
        }
        if (!start || !*start)
                return "?";
        size_t len = strcspn(start, ":");
        if (len >= size)
                len = size - 1;
        memcpy(buf, start, len);
        buf[len] = '\0';
        return buf;
}

static void serve_stream(int fd, const char *line) {
        int conn = accept(fd, NULL, NULL);
        if (conn < 0)
                return;
        struct timeval timeout = {.tv_sec = 1};
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        (void) !write(conn, line, strlen(line));
        /* Read what the client sent before closing: closing with unread data would
         * reset the connection, and the client could lose the reply. */
        shutdown(conn, SHUT_WR);
        char sink[512];
        while (read(conn, sink, sizeof(sink)) > 0)
                ;
        close(conn);
}

static void serve_datagram(int fd, const char *prefix) {
        char buf[2048];
        size_t len = strlen(prefix);
        memcpy(buf, prefix, len);
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        ssize_t n = recvfrom(fd, buf + len, sizeof(buf) - len, 0, (struct sockaddr *) &peer, &peer_len);
        if (n >= 0)
                sendto(fd, buf, len + (size_t) n, 0, (struct sockaddr *) &peer, peer_len);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: listen-serve REPLY\n");
                return 2;
        }
        const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
        const char *names = getenv("LISTEN_FDNAMES");
        if (!pid || atol(pid) != (long) getpid()) {
                fprintf(stderr, "listen-serve: LISTEN_PID is not this process\n");
                return 1;
        }
        int count = fds ? atoi(fds) : 0;
        if (count < 1 || count > MAX_FDS) {
                fprintf(stderr, "listen-serve: LISTEN_FDS=%s\n", fds ? fds : "");
                return 1;
        }
        struct pollfd polled[MAX_FDS];
        char lines[MAX_FDS][512];
        int types[MAX_FDS];
        for (int i = 0; i < count; i++) {
                int fd = LISTEN_FDS_START + i;
                socklen_t len = sizeof(types[i]);
                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &types[i], &len) < 0) {
                        perror("listen-serve: fd is no socket");
                        return 1;
                }
                char name[256];
                name_of(names, i, name, sizeof(name));
                if (types[i] == SOCK_STREAM)
                        snprintf(lines[i], sizeof(lines[i]), "%s %s %s %s\n", argv[1], name, fds,
                                 names ? names : "");
                else
                        snprintf(lines[i], sizeof(lines[i]), "%s %s ", argv[1], name);
                polled[i] = (struct pollfd){.fd = fd, .events = POLLIN};
        }
        printf("listen-serve: serving %d sockets named %s\n", count, names ? names : "");
        fflush(stdout);
        for (;;) {
                if (poll(polled, (nfds_t) count, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("listen-serve: poll");
                        return 1;
                }
                for (int i = 0; i < count; i++) {
                        if (!(polled[i].revents & POLLIN))
                                continue;
                        if (types[i] == SOCK_STREAM)
                                serve_stream(polled[i].fd, lines[i]);
                        else
                                serve_datagram(polled[i].fd, lines[i]);
                }
        }
}
