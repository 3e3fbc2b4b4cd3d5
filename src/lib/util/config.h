/* A daemon's configuration file: one option per line, named as on the
 * command line without the dashes ("listen = 10.0.0.1:9000", "debug",
 * "insecure-no-token = true"; "#" starts a comment). The file's options go
 * before the command line's, so that a flag given there overrides the file
 * (a repeatable option adds to it). */
#pragma once
#include <getopt.h>
#include <stdbool.h>

#include "util/err.h"

/* The configuration file named by --config FILE (or --config=FILE) in argv,
 * else def when it exists, else none (*path NULL). 0, or < 0 with err set
 * when --config names a file that cannot be read. */
int config_find(int argc, char **argv, const char *def, const char **path, struct ferry_err *err);

/* argv with path's options inserted after argv[0] (each as "--name" or
 * "--name=value"), checked against lo: an unknown name, a value for an
 * option that takes none or none for one that needs it is an error naming
 * the file and line. *out_argv (malloc'd, strings too) ends with NULL. */
int config_argv(const char *path, const struct option *lo, int argc, char **argv, int *out_argc,
                char ***out_argv, struct ferry_err *err);

/* Both, as a daemon's main starts: argc and argv become the configuration
 * file's options (the one --config names, else def if it exists) followed
 * by the command line's; *owned holds them until main returns. */
int config_args(const char *def, const struct option *lo, int *argc, char ***argv, char ***owned,
                struct ferry_err *err);
