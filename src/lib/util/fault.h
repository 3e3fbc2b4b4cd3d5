/* Fault injection for tests, in the spirit of CRIU_FAULT: the environment
 * variable FERRY_FAULT="point:action[,point:action...]" makes the named points
 * misbehave. Actions: "exit" (the process dies on the spot, like a crash),
 * "fail" (the step fails), "enospc" (the step fails as on a full disk),
 * "hang" (the step blocks for an hour), "delay=MS", "stop" (-ECANCELED: the
 * caller acts as if its agent stopped there, leaving everything as it is,
 * for tests that run an agent's code in their own process, where "exit"
 * would end the test). */
#pragma once
#include <stdbool.h>

#include "util/err.h"

/* Returns 0 when no fault is set for point (or after a delay); exits, hangs,
 * or returns a negative errno with err set, as the action says. */
int ferry_fault(const char *point, struct ferry_err *err);
