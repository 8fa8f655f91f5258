/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * notify-ready SECONDS COMMAND [ARGS...]: sleep, tell systemd READY=1 through
 * $NOTIFY_SOCKET, then exec COMMAND in the same process (so the main PID sends it).
 * Built statically at test time into a busybox rootfs, which has no sd_notify tool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
        if (argc < 3) {
                fprintf(stderr, "usage: notify-ready SECONDS COMMAND [ARGS...]\n");
                return 2;
        }
        sleep((unsigned) atoi(argv[1]));
        const char *path = getenv("NOTIFY_SOCKET");
        if (!path || strlen(path) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
                fprintf(stderr, "notify-ready: no usable NOTIFY_SOCKET\n");
                return 1;
        }
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        strcpy(address.sun_path, path);
        if (address.sun_path[0] == '@')
                address.sun_path[0] = '\0';
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const char message[] = "READY=1";
        if (fd < 0 || sendto(fd, message, strlen(message), 0, (struct sockaddr *) &address,
                             sizeof(address)) < 0) {
                perror("notify-ready");
                return 1;
        }
        close(fd);
        execv(argv[2], argv + 2);
        perror("notify-ready: exec");
        return 127;
}
