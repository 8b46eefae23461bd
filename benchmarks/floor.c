/* Benchmark helpers in C (compiled by the benchmark into its cache, never shipped):
 *   floor.c send N GAP      sendto() N "STATUS=…" datagrams to $NOTIFY_SOCKET, one at a time into an idle
 *                           socket, 1 ms apart: GAP "idle" sleeps, "warm" busy-waits (as the Node
 *                           services do); prints each send's duration in ns (the cost floor).
 *   floor.c burst N         sendto() N datagrams back to back on a blocking socket; prints the wall time.
 *   floor.c receive PATH US binds PATH, receives until 2 s of silence spending US µs per message (like the
 *                           manager), prints {"received":…,"inOrder":…}. Messages are "STATUS=<seq>". */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static socklen_t address(struct sockaddr_un *sa, const char *path) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  strncpy(sa->sun_path, path, sizeof sa->sun_path - 1);
  if (path[0] == '@') sa->sun_path[0] = 0;
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + (path[0] == '@' ? 0 : 1));
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  if (strcmp(argv[1], "receive") == 0) {
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa;
    unlink(argv[2]);
    socklen_t len = address(&sa, argv[2]);
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) { perror("bind"); return 1; }
    long spend = argc > 3 ? atol(argv[3]) : 0;
    long received = 0, expected = 0;
    int in_order = 1;
    char buf[4096];
    printf("ready\n");
    fflush(stdout);
    struct pollfd p = { fd, POLLIN, 0 };
    while (poll(&p, 1, received ? 2000 : 30000) > 0) {
      ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
      if (n <= 0) break;
      buf[n] = 0;
      long seq = strncmp(buf, "STATUS=", 7) == 0 ? atol(buf + 7) : -1;
      if (seq != expected) in_order = 0;
      expected = seq + 1;
      received++;
      long long until = now_ns() + spend * 1000;
      while (now_ns() < until) { /* the manager's work per message */ }
    }
    printf("{\"received\":%ld,\"inOrder\":%s}\n", received, in_order ? "true" : "false");
    return 0;
  }
  const char *target = getenv("NOTIFY_SOCKET");
  if (!target) return 3;
  long count = atol(argv[2]);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa;
  socklen_t len = address(&sa, target);
  char msg[64];
  if (strcmp(argv[1], "burst") == 0) {
    long long start = now_ns();
    for (long i = 0; i < count; i++) {
      int n = snprintf(msg, sizeof msg, "STATUS=%ld", i);
      if (sendto(fd, msg, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0) { perror("sendto"); return 1; }
    }
    printf("{\"ms\":%.3f}\n", (now_ns() - start) / 1e6);
    return 0;
  }
  for (long i = 0; i < count; i++) {
    int n = snprintf(msg, sizeof msg, "STATUS=floor %ld", i);
    long long t0 = now_ns();
    sendto(fd, msg, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    long long t1 = now_ns();
    printf("%lld\n", t1 - t0);
    /* let the manager drain: each message goes into an idle socket */
    if (argc > 3 && strcmp(argv[3], "warm") == 0) {
      long long until = now_ns() + 1000000;
      while (now_ns() < until) { }
    } else usleep(1000);
  }
  return 0;
}
