/* The image store: layers extracted once each, keyed by sha256, and image
 * records (names, layer list, run configuration).
 *
 *   ROOT/layers/<hex>/        a layer's files (OCI whiteouts as overlay whiteouts)
 *   ROOT/images/<hex>.json    an image record
 *
 * An image record is a JSON object:
 *   {"id": "sha256:..", "names": ["busybox:latest"], "layers": ["sha256:..", ...] (bottom first),
 *    "config": {"Env": [..], "Entrypoint": [..], "Cmd": [..], "WorkingDir": "..", "User": ".."},
 *    "size": bytes, "created": "RFC 3339", "source": "oci-archive"|"docker-archive"|"rootfs"}
 * The store does no locking: its owner (the agent) serialises calls. */
#pragma once
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "image/extract.h"
#include "util/err.h"

struct image_store {
  char *root;
  char *layers_dir;
  char *images_dir;
  char *tmp_dir;
  struct extract_limits limits;
  /* layers an import or an incoming migration counts on before an image
   * record refers to them: never dropped as unused (digest -> count) */
  pthread_mutex_t pin_lock;
  json_t *pins;
};

/* Pins (or unpins) layers: a pinned layer is kept by
 * image_layers_drop_unused even when no image refers to it. Balanced calls;
 * unpinning what is not pinned does nothing. */
void image_layer_pin(struct image_store *s, const char *digest);
void image_layer_unpin(struct image_store *s, const char *digest);
bool image_layer_pinned(struct image_store *s, const char *digest);

int image_store_open(struct image_store *s, const char *root, struct ferry_err *err);
void image_store_close(struct image_store *s);

/* "name" -> "name:latest"; refuses names with characters outside
 * [a-z0-9._/:-] or an empty name. out is malloc'd. */
int image_normalize_name(const char *name, char **out, struct ferry_err *err);

/* Imports an OCI archive, docker-archive or rootfs tarball. name may be NULL
 * (taken from the archive, else the file's base name). On success *out is a
 * new reference to the image record. On failure nothing is left behind. */
int image_import(struct image_store *s, const char *archive, const char *name,
                 const char *display_name, json_t **out, struct ferry_err *err);

/* Pulls ref (registry/repository[:tag]) from its registry with skopeo and
 * imports it under that name (pull.c). authfile: a containers-auth.json
 * (NULL: skopeo's defaults, as podman's); cert_dir: the registry's CA and
 * client certificates; creds "USER:PASSWORD"; tls_verify off only when asked.
 * On failure (registry unreachable, refused credentials, unknown tag, a
 * certificate not trusted: 503 with skopeo's message) nothing is stored. */
struct pull_opts {
  const char *authfile, *cert_dir, *creds;
  const char *scratch; /* where a private auth file is made for creds (the store's tmp) */
  bool tls_verify;
};
/* skopeo copies ref into a scratch archive (no lock held: a registry may
 * take an hour), then it is imported under import_lock (when not NULL).
 * Credentials go to skopeo in a private auth file, never on its command
 * line; authfile must be a regular file and cert_dir a directory. */
int image_pull(struct image_store *s, const char *ref, const struct pull_opts *o,
               pthread_mutex_t *import_lock, json_t **out, struct ferry_err *err);
/* skopeo copy src dst with o on the registry's side (dst when to_registry,
 * else src); a failure is 503 "what: skopeo's reason". Used by pull and push. */
int skopeo_copy(const char *src, const char *dst, bool to_registry, const struct pull_opts *o,
                const char *what, struct ferry_err *err);

/* Finds an image by name[:tag], full id, or unique id prefix (at least 4 hex). */
int image_lookup(struct image_store *s, const char *ref, json_t **out, struct ferry_err *err);
/* A JSON array of all image records, sorted by first name. */
json_t *image_list(struct image_store *s);
/* Removes an image by reference. An image that has several names only loses
 * the name it was removed by; otherwise the record and the layers no other
 * image uses go. The caller checks that no container uses the image. */
/* Whether removing ref from img only takes that name off (img has others):
 * a tag goes even while containers use the image. */
bool image_remove_untags(json_t *img, const char *ref);
int image_remove(struct image_store *s, const char *ref, char ***trash, struct ferry_err *err);

/* Malloc'd path of a layer's directory. */
char *image_layer_dir(struct image_store *s, const char *digest);
/* Writes an image record (used by import and by checkpoint restore). */
int image_save(struct image_store *s, json_t *img, struct ferry_err *err);
/* Takes the layers (an array of digests) that no image record refers to out
 * of the store: each is renamed into the store's tmp directory ("trash-"),
 * an instant under the caller's lock, and its path added to *trash (a strv)
 * for image_trash_empty, the long deletion, once the lock is let go. A
 * trash the agent did not empty (it died) goes when the store opens. */
void image_layers_drop_unused(struct image_store *s, json_t *digests, char ***trash);
void image_trash_empty(char **trash);
