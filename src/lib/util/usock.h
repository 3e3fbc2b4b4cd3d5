/* Unix stream sockets by path, any length (a path longer than sun_path is
 * reached through its directory's descriptor), and descriptors passed over
 * them (SCM_RIGHTS). System calls only, so usable in ferry-shim. */
#pragma once

/* A listening socket at path (an old socket file there is replaced), mode
 * 0600; -errno on failure. */
int usock_listen(const char *path);
/* A connection to the socket at path; -errno on failure. */
int usock_connect(const char *path);
/* One descriptor received on fd (runc's console socket sends the terminal's
 * master with its name as the data); -errno, or -EPROTO when none came. */
int usock_recv_fd(int fd);
