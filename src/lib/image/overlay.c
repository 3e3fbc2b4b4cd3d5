#include "image/overlay.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strv.h"

int overlay_mount(char *const *lowers, const char *upper, const char *work, const char *target,
                  struct ferry_err *err)
{
  size_t n = strv_len(lowers);
  if (n == 0)
    return FERRY_INVALID(err, "rootfs %s: image has no layers", target);
  size_t cap = 64 + strlen(upper) + strlen(work);
  for (size_t i = 0; i < n; i++)
    cap += strlen(lowers[i]) + 1;
  _cleanup_free_ char *opts = malloc(cap);
  if (!opts)
    abort();
  strcpy(opts, "lowerdir=");
  for (size_t i = n; i-- > 0;) {
    strcat(opts, lowers[i]);
    if (i > 0)
      strcat(opts, ":");
  }
  strcat(opts, ",upperdir=");
  strcat(opts, upper);
  strcat(opts, ",workdir=");
  strcat(opts, work);
  if (strlen(opts) >= 4000)
    return FERRY_INVALID(err, "rootfs %s: %zu layers give overlay options longer than a page", target,
                         n);
  if (mount("overlay", target, "overlay", 0, opts) < 0)
    return ferry_err_sys(err, -errno, "mount overlay on %s", target);
  return 0;
}

int overlay_umount(const char *target, struct ferry_err *err)
{
  if (!path_is_mountpoint(target))
    return 0;
  if (umount2(target, 0) < 0) {
    if (errno == EBUSY && umount2(target, MNT_DETACH) == 0)
      return 0;
    if (errno == EINVAL || errno == ENOENT)
      return 0;
    return ferry_err_sys(err, -errno, "unmount %s", target);
  }
  return 0;
}
