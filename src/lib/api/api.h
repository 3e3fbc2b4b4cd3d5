/* The agent's REST API over http/: the /v1 routes (routes.c) and the
 * seeds' routes (seed.c), both tables of handlers that call agent/ and
 * migrate/. docs/api.md describes every route. */
#pragma once
#include "agent/agent.h"
#include "http/http.h"

/* Serves the agent: dispatch and uploads from here, the rest of o (sockets,
 * token, TLS, limits) as given. */
int api_server_start(struct agent *a, const struct http_server_options *o,
                     struct http_server **out, struct ferry_err *err);
/* Answers one request (the seeds' routes, then /v1). */
void api_dispatch(void *agent, const struct http_request *req, struct http_response *resp);
/* True when the request's body should be streamed to a file (image and
 * migration uploads). */
bool api_route_wants_upload(const char *method, const char *path);
/* The seeds' API (seed.c): false when the path is not one of it. */
bool api_seed_dispatch(struct agent *a, const struct http_request *req, struct http_response *resp);
