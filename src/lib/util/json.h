/* Small jansson helpers: typed getters that fill a ferry_err naming the field. */
#pragma once
#include <jansson.h>
#include <stdbool.h>

#include "util/err.h"

static inline void ferry_json_decrefp(json_t **j)
{
  if (*j)
    json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(ferry_json_decrefp)))

/* Parses text; a parse error names what and where. */
int json_parse(const char *text, size_t len, const char *what, json_t **out, struct ferry_err *err);
int json_load(const char *path, json_t **out, struct ferry_err *err);
int json_save_atomic(const char *path, json_t *j, struct ferry_err *err);
/* json_save_atomic without the fsync (write_file_replace). */
int json_save_quick(const char *path, json_t *j, struct ferry_err *err);
/* json_save_atomic; when that fails for lack of space and the new text is
 * no longer than the file, it is written over the file in place instead
 * (padded with spaces): a record that shrinks can always be saved. */
int json_save_durable(const char *path, json_t *j, struct ferry_err *err);

/* Optional string field: *out = NULL when absent; error if present with another type. */
int json_get_str(json_t *obj, const char *key, bool required, const char **out,
                 struct ferry_err *err);
int json_get_bool(json_t *obj, const char *key, bool def, bool *out, struct ferry_err *err);
/* Array of strings -> NULL-terminated malloc'd vector of malloc'd strings. */
int json_get_strv(json_t *obj, const char *key, char ***out, struct ferry_err *err);
json_t *json_strv(char *const *v);
const char *json_str_or(json_t *obj, const char *key, const char *def);
/* Whether the array arr holds the string s. */
bool json_array_has_str(json_t *arr, const char *s);
