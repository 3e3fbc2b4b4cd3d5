/* Safe extraction of a tar archive (any compression libarchive reads) into a
 * directory. Nothing is ever written outside dest: absolute names, "..",
 * paths through symlinks, hardlinks to outside, and oversize entries are
 * refused with an error that names the entry. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct extract_limits {
  uint64_t max_entry_size; /* bytes of one regular file */
  uint64_t max_total_size; /* bytes of all regular files */
  uint64_t max_entries;
  /* A compression bomb: regular files may add up to max_ratio times the
   * archive file's own size, or ratio_floor bytes if that is more (0: no
   * ratio check). */
  uint64_t max_ratio;
  uint64_t ratio_floor;
};

extern const struct extract_limits extract_default_limits;

enum extract_mode {
  EXTRACT_LAYER,   /* an image layer: OCI whiteouts become overlay whiteouts */
  EXTRACT_PLAIN,   /* a container (OCI layout, docker-archive): files, dirs, symlinks */
  EXTRACT_UPPER,   /* an overlay upper dir written by ferry: whiteouts and xattrs kept */
};

/* dest must exist. what names the archive in errors. */
int extract_archive(const char *archive_path, const char *dest, enum extract_mode mode,
                    const struct extract_limits *lim, const char *what, struct ferry_err *err);

/* The same from an open file (read from where it is). */
int extract_archive_fd(int fd, const char *dest, enum extract_mode mode,
                       const struct extract_limits *lim, const char *what, struct ferry_err *err);

/* A flat archive of regular files (CRIU's images) into the directory
 * dest: every entry a file named by one component (an entry "./" for the
 * archive's root is skipped); a directory, link, device or a name with a
 * "/" is refused, as is a file over the limits. A few system calls per
 * file, nothing followed (a name already in dest is replaced); permissions
 * kept, owner and times not. */
int extract_flat(const char *archive_path, const char *dest, const struct extract_limits *lim,
                 const char *what, struct ferry_err *err);

/* Normalises an archive member name: strips "./" and trailing "/", refuses
 * absolute names and ".." components. out gets a malloc'd relative path
 * ("" for the archive root). Exposed for tests. */
int extract_clean_name(const char *name, char **out, struct ferry_err *err);
