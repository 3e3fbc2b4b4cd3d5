/* The coordinator under many agents: registers N simulated agents, then
 * sends each one's heartbeat every INTERVAL seconds for DURATION seconds
 * (evenly spread: N/INTERVAL heartbeats a second) over at most CONNS
 * connections at once, and measures each heartbeat from the moment it was
 * due (queueing included) to its answer.
 *
 *   coord-load SOCKET N INTERVAL DURATION CONNS
 *
 * Prints one line: "agents=N rate=R/s sent=S ok=O errors=E p50_ms= p90_ms=
 * p99_ms= max_ms= late_ms=" (late: how far behind its schedule the last
 * heartbeat started). SOCKET is the coordinator's unix socket. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct body {
  char buf[512];
  size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
  struct body *b = ud;
  size_t k = sz * n;
  size_t room = sizeof b->buf - 1 - b->len;
  memcpy(b->buf + b->len, p, k < room ? k : room);
  b->len += k < room ? k : room;
  b->buf[b->len] = '\0';
  return k;
}

struct slot {
  CURL *h;
  struct curl_slist *hdr;
  struct body body;
  double due;
  char post[160];
};

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void setup(struct slot *s, const char *sock, const char *url, const char *post)
{
  curl_easy_reset(s->h);
  curl_easy_setopt(s->h, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt(s->h, CURLOPT_URL, url);
  snprintf(s->post, sizeof s->post, "%s", post);
  curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->post);
  curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdr);
  curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body);
  s->body.len = 0;
  curl_easy_setopt(s->h, CURLOPT_WRITEDATA, &s->body);
  curl_easy_setopt(s->h, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
}

int main(int argc, char **argv)
{
  if (argc != 6) {
    fprintf(stderr, "usage: coord-load SOCKET N INTERVAL DURATION CONNS\n");
    return 2;
  }
  const char *sock = argv[1];
  long n = atol(argv[2]), conns = atol(argv[5]);
  double interval = atof(argv[3]), duration = atof(argv[4]);
  if (n < 1 || n > 1000000 || interval <= 0 || duration <= 0 || conns < 1 || conns > 1024) {
    fprintf(stderr, "coord-load: bad arguments\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  char **secret = calloc((size_t)n, sizeof *secret);
  struct slot *slots = calloc((size_t)conns, sizeof *slots);
  if (!secret || !slots)
    return 1;
  for (long i = 0; i < conns; i++) {
    slots[i].h = curl_easy_init();
    slots[i].hdr = curl_slist_append(NULL, "Content-Type: application/json");
    slots[i].hdr = curl_slist_append(slots[i].hdr, "Expect:");
  }
  /* registration, one at a time: each agent gets its secret */
  for (long i = 0; i < n; i++) {
    char post[160];
    snprintf(post, sizeof post, "{\"name\": \"load-%ld\", \"url\": \"tcp://198.18.%ld.%ld:8000\"}",
             i, (i / 250) % 256, i % 250 + 1);
    setup(&slots[0], sock, "http://coord/v1/nodes", post);
    long code = 0;
    if (curl_easy_perform(slots[0].h) != CURLE_OK ||
        curl_easy_getinfo(slots[0].h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200) {
      fprintf(stderr, "coord-load: registering load-%ld: HTTP %ld %s\n", i, code, slots[0].body.buf);
      return 1;
    }
    char *p = strstr(slots[0].body.buf, "\"node_secret\"");
    char *q = p ? strchr(p + 13, '"') : NULL;
    if (!q || strlen(q) < 66) {
      fprintf(stderr, "coord-load: no secret for load-%ld\n", i);
      return 1;
    }
    secret[i] = strndup(q + 1, 64);
  }
  /* heartbeats on schedule */
  long total = (long)(duration / interval * (double)n);
  double *lat = malloc((size_t)total * sizeof *lat);
  if (!lat)
    return 1;
  CURLM *m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, conns);
  long next = 0, done = 0, ok = 0, errors = 0, busy = 0;
  int *free_slots = malloc((size_t)conns * sizeof *free_slots);
  long nfree = conns;
  for (long i = 0; i < conns; i++)
    free_slots[i] = (int)(conns - 1 - i);
  double t0 = now_s() + 0.2, late = 0;
  while (done < total) {
    double now = now_s();
    while (next < total && nfree > 0) {
      double due = t0 + (double)next * interval / (double)n;
      if (due > now)
        break;
      if (now - due > late)
        late = now - due;
      struct slot *s = &slots[free_slots[--nfree]];
      long agent = next % n;
      char url[128], post[160];
      snprintf(url, sizeof url, "http://coord/v1/nodes/load-%ld/heartbeat", agent);
      snprintf(post, sizeof post, "{\"node_secret\": \"%s\"}", secret[agent]);
      setup(s, sock, url, post);
      curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
      s->due = due;
      curl_multi_add_handle(m, s->h);
      busy++;
      next++;
    }
    int running;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      struct slot *s;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
      long code = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
      if (msg->data.result == CURLE_OK && code == 200)
        ok++;
      else
        errors++;
      lat[done++] = (now_s() - s->due) * 1000.0;
      curl_multi_remove_handle(m, msg->easy_handle);
      free_slots[nfree++] = (int)(s - slots);
      busy--;
    }
    double wait = next < total ? t0 + (double)next * interval / (double)n - now_s() : 0.05;
    int ms = wait > 0.05 ? 50 : wait > 0 ? (int)(wait * 1000) : 0;
    if (busy > 0 || ms > 0)
      curl_multi_poll(m, NULL, 0, ms, NULL);
  }
  qsort(lat, (size_t)done, sizeof *lat, cmp_double);
  double span = now_s() - t0;
  printf("agents=%ld rate=%.0f/s sent=%ld ok=%ld errors=%ld p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f "
         "max_ms=%.1f late_ms=%.1f\n",
         n, (double)done / span, done, ok, errors, lat[done / 2], lat[done * 9 / 10],
         lat[done * 99 / 100], lat[done - 1], late * 1000.0);
  return errors ? 3 : 0;
}
