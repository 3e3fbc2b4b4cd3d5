/* The container root file system: an overlay of image layers plus a
 * per-container upper dir. */
#pragma once
#include <stdbool.h>

#include "util/err.h"
#include "util/fs.h" /* path_is_mountpoint */

/* lowers: layer dirs, bottom first (image order), NULL-terminated. */
int overlay_mount(char *const *lowers, const char *upper, const char *work, const char *target,
                  struct ferry_err *err);
/* Unmounts target if mounted (lazily when busy). */
int overlay_umount(const char *target, struct ferry_err *err);

