/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG=inspect and cctx-inspect: a program under load (threads
 * deriving and cancelling all along) answers in text, JSON, DOT and HTML;
 * another user cannot reach it, even through a directory opened by mistake
 * (peer credentials); with the switch off nothing is served.
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"

extern char **environ;

/* ---- the program inspected --------------------------------------------------------- */

static atomic_int stop;
static cctx_t *root;

static void *churn(void *arg)
{
    (void)arg;
    char name[32];
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        cctx_cancel_t *cancel;
        cctx_t *c = cctx_with_cancel(root, &cancel);
        snprintf(name, sizeof name, "request %u", i % 100);
        cctx_set_name(c, name);
        cctx_t *v = cctx_with_value(c, &stop, NULL, NULL);
        cctx_t *t = cctx_with_timeout(v, CCTX_SEC(30), NULL);
        cctx_cancel(cancel);
        cctx_release(t);
        cctx_release(v);
        cctx_release(c);
    }
    return NULL;
}

/* Serves until its standard input closes; says "ready" once the tree is up. */
CHILD(inspect_under_load)
{
    root = cctx_with_cancel(cctx_background(), NULL);
    cctx_set_name(root, "inspect-root");
    cctx_t *held = cctx_with_timeout(root, CCTX_SEC(3600), NULL);
    cctx_set_name(held, "long \"job\"");
    enum { N = 3 };
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, churn, NULL);
    printf("ready\n");
    fflush(stdout);
    char b;
    while (read(0, &b, 1) > 0)
        ;
    atomic_store(&stop, 1);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    cctx_release(held);
    cctx_release(root);
}

struct served {
    pid_t pid;
    int to, from; /* its stdin (closing it ends it), its stdout */
    char dir[64], sock[128];
};

static void start_served(struct served *s, bool inspect)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/cctx-inspect-test-XXXXXX");
    CHECK(mkdtemp(s->dir));
    int in[2], out[2];
    CHECK(pipe(in) == 0 && pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char dirvar[128];
    snprintf(dirvar, sizeof dirvar, "CCTX_INSPECT_DIR=%s", s->dir);
    /* The sanitizers' settings go along (leak checking off, as run_child does). */
    char tsan[512];
    snprintf(tsan, sizeof tsan, "TSAN_OPTIONS=%s",
             getenv("TSAN_OPTIONS") ? getenv("TSAN_OPTIONS") : "");
    char *env[] = {inspect ? "CCTX_DEBUG=inspect" : "CCTX_DEBUG=", dirvar,
                   "ASAN_OPTIONS=detect_leaks=0", tsan, NULL};
    char *argv[] = {"cctx-tests", "--child", "inspect_under_load", NULL};
    CHECK(posix_spawn(&s->pid, "/proc/self/exe", &fa, NULL, argv, env) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    s->to = in[1];
    s->from = out[0];
    char ready[6] = {0};
    size_t got = 0;
    while (got < sizeof ready - 1) {
        ssize_t r = read(s->from, ready + got, sizeof ready - 1 - got);
        CHECK(r > 0);
        got += (size_t)r;
    }
    CHECK_STR(ready, "ready");
    snprintf(s->sock, sizeof s->sock, "%s/%ld.sock", s->dir, (long)s->pid);
}

static void stop_served(struct served *s)
{
    close(s->to);
    int status;
    CHECK(waitpid(s->pid, &status, 0) == s->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(s->from);
    struct stat st;
    CHECK(stat(s->sock, &st) != 0); /* removed at exit */
    CHECK(rmdir(s->dir) == 0);
}

/* Asks over the socket; the answer (malloc'd, NUL-terminated), or NULL if
 * the connection failed (errno set). */
static char *ask(const char *sock, const char *format, size_t *len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    dprintf(fd, "%s\n", format);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    close(fd);
    *len = n;
    return buf;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

TEST(inspect_every_format_under_load)
{
    struct served s;
    start_served(&s, true);
    struct stat st;
    CHECK(stat(s.sock, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
    enum { ROUNDS = 40 };
    int64_t took[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        size_t len;
        int64_t t0 = real_now();
        char *text = ask(s.sock, "text", &len);
        took[i] = real_now() - t0;
        CHECK(text);
        CHECK(strstr(text, "root "));
        CHECK(strstr(text, "\"inspect-root\""));
        CHECK(strstr(text, "\"long \\\"job\\\"\""));
        CHECK(strstr(text, "made at tests/test_inspect.c:"));
        free(text);
    }
    qsort(took, ROUNDS, sizeof *took, cmp_i64);
    printf("inspect round trip (text, under load): p50 %.0f us, max %.0f us\n",
           (double)took[ROUNDS / 2] / 1e3, (double)took[ROUNDS - 1] / 1e3);
    size_t len;
    char *json = ask(s.sock, "json", &len);
    CHECK(json && json[0] == '[' && json[len - 2] == ']');
    CHECK(strstr(json, "\"name\":\"inspect-root\""));
    CHECK(strstr(json, "\"name\":\"long \\\"job\\\"\""));
    if (have_python()) {
        char path[] = "/tmp/cctx-inspect-json-XXXXXX";
        int fd = mkstemp(path);
        CHECK(write(fd, json, len) == (ssize_t)len);
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' %s",
                 path);
        CHECK_EQ(system(cmd), 0);
        unlink(path);
    }
    free(json);
    char *dot = ask(s.sock, "dot", &len);
    CHECK(dot && strncmp(dot, "strict digraph cctx {", 21) == 0 && strstr(dot, "inspect-root"));
    free(dot);
    char *html = ask(s.sock, "html", &len);
    CHECK(html && strstr(html, "<html") && strstr(html, "inspect-root"));
    free(html);
    char *bad = ask(s.sock, "yaml", &len);
    CHECK(bad && strstr(bad, "unknown format"));
    free(bad);

    /* The command, next to this test program. */
    char exe[512], cmd[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(cmd, sizeof cmd, "CCTX_INSPECT_DIR=%s %s/cctx-inspect %ld --json", s.dir, exe,
             (long)s.pid);
    FILE *p = popen(cmd, "r");
    char out[256] = {0};
    CHECK(p && fread(out, 1, sizeof out - 1, p) > 0);
    CHECK(pclose(p) == 0);
    CHECK(out[0] == '[');
    snprintf(cmd, sizeof cmd, "CCTX_INSPECT_DIR=%s %s/cctx-inspect %ld | grep -q inspect-root",
             s.dir, exe, (long)s.pid);
    CHECK_EQ(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "CCTX_INSPECT_DIR=%s %s/cctx-inspect 1 2>/dev/null", s.dir, exe);
    CHECK(WEXITSTATUS(system(cmd)) == 1); /* nothing served there */
    stop_served(&s);
}

/* A process of another user: 0 if it got nothing, 1 if it got the tree. */
static int as_nobody(const char *sock)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN); /* a refused peer may find the socket closed */
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
            _exit(3);
        size_t len = 0;
        char *got = ask(sock, "text", &len);
        _exit(got && len > 0 ? 1 : 0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status))
        fprintf(stderr, "the other user's process: status %#x\n", status);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

TEST(inspect_refuses_another_user)
{
    if (geteuid() != 0)
        SKIP("needs root, to act as another user");
    struct served s;
    start_served(&s, true);
    struct stat st;
    CHECK(stat(s.dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    CHECK_EQ(as_nobody(s.sock), 0); /* the directory stops it */
    /* A mistake opens the way: the peer's credentials still stop it. */
    CHECK(chmod(s.dir, 0755) == 0 && chmod(s.sock, 0666) == 0);
    CHECK_EQ(as_nobody(s.sock), 0);
    size_t len;
    char *mine = ask(s.sock, "text", &len); /* and the owner still gets in */
    CHECK(mine && strstr(mine, "inspect-root"));
    free(mine);
    chmod(s.dir, 0700);
    stop_served(&s);
}

TEST(inspect_refuses_a_directory_open_to_others)
{
    char dir[] = "/tmp/cctx-inspect-open-XXXXXX";
    CHECK(mkdtemp(dir));
    CHECK(chmod(dir, 0777) == 0);
    char var[128];
    snprintf(var, sizeof var, "CCTX_INSPECT_DIR=%s", dir);
    const char *env[] = {"CCTX_DEBUG=inspect", var, NULL};
    struct child c;
    run_child("inspect_off", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK(strstr(c.err, "CCTX_DEBUG=inspect: no private directory"));
    CHECK(strstr(c.out, "no socket"));
    child_done(&c);
    rmdir(dir);
}

CHILD(inspect_off)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%ld.sock", getenv("CCTX_INSPECT_DIR"), (long)getpid());
    struct stat st;
    printf("%s\n", stat(path, &st) == 0 ? "socket" : "no socket");
}

TEST(inspect_off_serves_nothing)
{
    char dir[] = "/tmp/cctx-inspect-off-XXXXXX";
    CHECK(mkdtemp(dir));
    char var[128];
    snprintf(var, sizeof var, "CCTX_INSPECT_DIR=%s", dir);
    const char *env[] = {var, NULL};
    struct child c;
    run_child("inspect_off", env, &c);
    CHECK(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CHECK_STR(c.out, "no socket\n");
    CHECK_STR(c.err, "");
    child_done(&c);
    CHECK(rmdir(dir) == 0);
}
