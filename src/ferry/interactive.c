/* Interactive sessions on the command line: `run -it`, `exec -it`, `attach`.
 * The agent's session (agent_session.c) is read as a stream of frames
 * (util/frame.h) onto stdout and stderr while stdin goes up as it is typed;
 * with a terminal, ours is put in raw mode, its size follows SIGWINCH, and
 * the detach keys (podman's, ctrl-p,ctrl-q by default) leave the container
 * running. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/frame.h"
#include "util/json.h"

bool exec_demux_feed(void *ud, const char *data, size_t n)
{
  struct exec_demux *d = ud;
  while (n > 0) {
    if (d->left == 0 && d->head_len < FRAME_HDR) {
      size_t k = FRAME_HDR - d->head_len < n ? FRAME_HDR - d->head_len : n;
      memcpy(d->head + d->head_len, data, k);
      d->head_len += k;
      data += k;
      n -= k;
      if (d->head_len < FRAME_HDR)
        return true;
      size_t len = 0;
      d->stream = frame_parse((const char *)d->head, &len);
      d->left = (uint32_t)len;
      d->head_len = 0;
      if (d->stream < FRAME_STDOUT || d->stream > FRAME_EXIT ||
          (d->stream == FRAME_EXIT && d->left >= sizeof d->exitj)) {
        d->bad = true;
        return false;
      }
      if (d->stream == FRAME_EXIT)
        d->exitj_len = 0;
      if (d->left > 0)
        continue;
    }
    size_t k = d->left < n ? d->left : n;
    if (d->stream == FRAME_STDOUT) {
      fwrite(data, 1, k, stdout);
      fflush(stdout); /* as it comes, into a pipe or file too */
    } else if (d->stream == FRAME_STDERR) {
      fflush(stdout);
      fwrite(data, 1, k, stderr);
    } else {
      memcpy(d->exitj + d->exitj_len, data, k);
      d->exitj_len += k;
    }
    d->left -= (uint32_t)k;
    data += k;
    n -= k;
    if (d->stream == FRAME_EXIT && d->left == 0) {
      d->exitj[d->exitj_len] = '\0';
      json_t *j = json_loads(d->exitj, 0, NULL);
      json_t *c = json_object_get(j, "exit_code");
      if (json_is_integer(c) && json_integer_value(c) >= 0 && json_integer_value(c) < 256)
        d->exit_code = (int)json_integer_value(c);
      else if (json_is_object(j) && json_object_size(j) == 0)
        d->exit_unknown = true; /* an attached container whose end was not seen */
      else
        d->bad = true;
      json_decref(j);
    }
  }
  return true;
}

int cli_parse_detach_keys(const char *spec, unsigned char *keys, size_t *n)
{
  *n = 0;
  if (!*spec)
    return 0; /* none: no detaching */
  _cleanup_free_ char *copy = xstrdup(spec);
  char *save = NULL;
  for (char *k = strtok_r(copy, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
    if (*n >= DETACH_KEYS_MAX)
      return cli_usage_error("--detach-keys %s: at most %d keys", spec, DETACH_KEYS_MAX);
    if (strncmp(k, "ctrl-", 5) == 0 && strlen(k) == 6) {
      char ch = k[5];
      if (ch >= 'a' && ch <= 'z')
        keys[(*n)++] = (unsigned char)(ch - 'a' + 1);
      else if (strchr("@[\\]^_", ch))
        keys[(*n)++] = (unsigned char)(ch & 0x1f);
      else
        return cli_usage_error("--detach-keys %s: \"%s\" is not a key (ctrl-a..ctrl-z, ctrl-@, "
                               "ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ or one character)", spec, k);
    } else if (strlen(k) == 1) {
      keys[(*n)++] = (unsigned char)k[0];
    } else {
      return cli_usage_error("--detach-keys %s: \"%s\" is not a key (ctrl-X or one character)",
                             spec, k);
    }
  }
  return 0;
}

struct session_run {
  struct exec_demux d; /* first: the stream's fn sees the same pointer */
  struct cli *cli;
  const char *id;
  const char *proxy; /* container to pass signals to (attach), else they end the session */
  bool tty;
  unsigned char keys[DETACH_KEYS_MAX];
  size_t nkeys, matched; /* detach keys typed so far */
  bool detached;
};

static volatile sig_atomic_t winch = 1, got_signal;

static void on_winch(int sig)
{
  (void)sig;
  winch = 1;
}

static void on_signal(int sig) { got_signal = sig; }

/* The detach keys are taken out of the input: a partial sequence is held
 * back until the next key shows whether it completes. */
static ssize_t detach_filter(void *ud, char *buf, size_t n, size_t cap)
{
  struct session_run *s = ud;
  if (!s->nkeys)
    return (ssize_t)n;
  char out[65536 + DETACH_KEYS_MAX];
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)buf[i];
    if (ch == s->keys[s->matched]) {
      if (++s->matched == s->nkeys) {
        s->detached = true;
        return -1;
      }
      continue;
    }
    /* not the sequence: what was held goes, then this key (which may
     * start the sequence anew) */
    for (size_t k = 0; k < s->matched && o < sizeof out; k++)
      out[o++] = (char)s->keys[k];
    s->matched = 0;
    if (ch == s->keys[0]) {
      s->matched = 1;
      if (s->nkeys == 1) {
        s->detached = true;
        return -1;
      }
    } else if (o < sizeof out) {
      out[o++] = (char)ch;
    }
  }
  if (n == 0) /* the end of input: what is held goes */
    for (size_t k = 0; k < s->matched && o < sizeof out; k++)
      out[o++] = (char)s->keys[k];
  if (n == 0)
    s->matched = 0;
  if (o > cap)
    o = cap;
  memcpy(buf, out, o);
  return (ssize_t)o;
}

static void session_tick(void *ud)
{
  struct session_run *s = ud;
  if (s->tty && winch) {
    winch = 0;
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
      if (ws.ws_row && ws.ws_col) {
        _cleanup_json_ json_t *body = json_pack("{s:i, s:i}", "rows", ws.ws_row, "cols", ws.ws_col);
        _cleanup_free_ char *url = xasprintf("/v1/sessions/%s/resize", s->id);
        http_call(s->cli->api, "POST", url, body, NULL, NULL);
      }
    }
  }
  int sig = got_signal;
  if (sig && s->proxy) {
    got_signal = 0;
    _cleanup_free_ char *e = http_escape(s->proxy);
    _cleanup_free_ char *url = xasprintf("/v1/containers/%s/kill?signal=%d", e, sig);
    http_call(s->cli->api, "POST", url, NULL, NULL, NULL);
  }
}

void cli_term_size(json_t *req)
{
  struct winsize ws;
  if ((ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) &&
      ws.ws_row && ws.ws_col) {
    json_object_set_new(req, "rows", json_integer(ws.ws_row));
    json_object_set_new(req, "cols", json_integer(ws.ws_col));
  }
}

int cli_session(struct cli *cli, const char *id, const struct cli_session_opts *o)
{
  struct session_run s = {.d = {.exit_code = -1}, .cli = cli, .id = id, .proxy = o->proxy,
                          .tty = o->tty};
  if (o->tty && o->in && cli_parse_detach_keys(o->detach_keys ? o->detach_keys : "ctrl-p,ctrl-q",
                                               s.keys, &s.nkeys))
    return 125;
  struct termios saved;
  bool raw = o->tty && o->in && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  struct sigaction sa = {0}, old_winch, old_sig[4];
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  sa.sa_handler = on_winch;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGWINCH, &sa, &old_winch);
  sa.sa_handler = on_signal;
  for (size_t i = 0; i < 4; i++)
    sigaction(sigs[i], &sa, &old_sig[i]);
  winch = 1;
  got_signal = 0;
  _cleanup_free_ char *out = xasprintf("/v1/sessions/%s", id);
  _cleanup_free_ char *in = o->in ? xasprintf("/v1/sessions/%s/stdin", id) : NULL;
  struct ferry_err err = {0};
  /* signals end an exec's session (the agent kills the command); an
   * attached container gets them instead */
  int r = http_duplex(cli->api, out, in, STDIN_FILENO, exec_demux_feed, detach_filter,
                      session_tick, &s, o->proxy ? NULL : &got_signal, &err);
  if (raw)
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  sigaction(SIGWINCH, &old_winch, NULL);
  for (size_t i = 0; i < 4; i++)
    sigaction(sigs[i], &old_sig[i], NULL);
  fflush(stdout);
  if (s.detached)
    return CLI_DETACHED;
  if (got_signal && !o->proxy)
    return 128 + got_signal;
  if (r < 0)
    return cli_fail(&err);
  if (s.d.exit_unknown) {
    fprintf(stderr, "Error: the container's output ended, its exit code is not known\n");
    return 125;
  }
  if (s.d.bad || s.d.exit_code < 0) {
    fprintf(stderr, "Error: the agent's answer ended %s\n",
            s.d.bad ? "with a malformed frame" : "before the exit code");
    return 125;
  }
  return s.d.exit_code;
}

int cmd_attach(struct cli *cli, int argc, char **argv)
{
  if (cli_wants_help(argc, argv,
                     "Usage: ferry attach [--no-stdin] [--detach-keys KEYS] NAME\n"
                     "Shows a running container's output as it comes and, when it was started\n"
                     "with -i or -t, sends it what is typed (with -t, in its terminal). The\n"
                     "detach keys (default ctrl-p,ctrl-q; \"\" for none) leave it running; so\n"
                     "does Ctrl-C without a terminal (the container gets the signal).\n"
                     "Exits with the container's exit code when it ends.\n"))
    return 0;
  static const struct option lo[] = {{"no-stdin", no_argument, 0, 'n'},
                                     {"detach-keys", required_argument, 0, 'k'},
                                     {0, 0, 0, 0}};
  bool no_stdin = false;
  const char *keys = NULL;
  int c;
  optind = 1;
  while ((c = cli_getopt(argc, argv, "+", lo)) != -1) {
    if (c == 'n')
      no_stdin = true;
    else if (c == 'k')
      keys = optarg;
    else
      return 125;
  }
  if (optind + 1 != argc)
    return cli_usage_error("attach needs one container name (see ferry attach --help)");
  return cli_attach(cli, argv[optind], !no_stdin, keys);
}

int cli_attach(struct cli *cli, const char *name, bool in, const char *keys)
{
  _cleanup_json_ json_t *req = json_pack("{s:b}", "stdin", in);
  cli_term_size(req);
  _cleanup_free_ char *e = http_escape(name);
  _cleanup_free_ char *url = xasprintf("/v1/containers/%s/attach", e);
  _cleanup_json_ json_t *ses = NULL;
  struct ferry_err err = {0};
  if (http_call(cli->api, "POST", url, req, &ses, &err) < 0)
    return cli_fail(&err);
  struct cli_session_opts o = {.tty = json_is_true(json_object_get(ses, "tty")),
                               .in = json_is_true(json_object_get(ses, "stdin")),
                               .detach_keys = keys,
                               .proxy = name};
  int rc = cli_session(cli, json_str_or(ses, "session", ""), &o);
  return rc == CLI_DETACHED ? 0 : rc;
}
