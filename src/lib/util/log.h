/* One line per event: "LEVEL module: message", to stderr. Programs only;
 * library code returns errors instead of logging, except the agent's event log. */
#pragma once

enum ferry_log_level { FERRY_LOG_DEBUG, FERRY_LOG_INFO, FERRY_LOG_WARN, FERRY_LOG_ERROR };

void ferry_log_set_level(enum ferry_log_level lvl);
void ferry_log(enum ferry_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(mod, ...) ferry_log(FERRY_LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) ferry_log(FERRY_LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) ferry_log(FERRY_LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) ferry_log(FERRY_LOG_ERROR, mod, __VA_ARGS__)
