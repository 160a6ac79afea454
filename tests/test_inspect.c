/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DEBUG=inspect and cctx-inspect: a program under load (threads
 * deriving and cancelling all along) answers in text, JSON, DOT and HTML,
 * sized when asked; another user cannot reach it, even through a directory
 * opened by mistake (peer credentials); with the switch off nothing is
 * served. A client slow to ask or to read is given up on within a bound for
 * the whole, and a child of fork() leaves no listener behind its parent and
 * holds no client's answer open.
 * (test_inspect_tool.c: cctx-inspect against answers given by hand.)
 */
#define _GNU_SOURCE
#include <cctx.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
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
#include "testhooks.h"

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

/* Serves until its standard input closes; says "ready" once the tree is up.
 * With INSPECT_TEST_CONTEXTS=N, N more contexts make a big dump; with
 * INSPECT_TEST_FORK set, it first forks a child that starts no thread (it may
 * run under ThreadSanitizer) and waits for its standard input to close. An
 * 'f' on its standard input forks such a child at that moment ("forked").
 * With INSPECT_TEST_NO_MEMORY set, the registry's snapshot cannot grow, so
 * every dump fails with ENOMEM. */
static void *no_memory(void *p, size_t size)
{
    (void)p, (void)size;
    return NULL;
}

CHILD(inspect_under_load)
{
    if (getenv("INSPECT_TEST_NO_MEMORY"))
        atomic_store(&cctx__registry_snapshot_realloc, no_memory);
    root = cctx_with_cancel(cctx_background(), NULL);
    cctx_set_name(root, "inspect-root");
    cctx_t *held = cctx_with_timeout(root, CCTX_SEC(3600), NULL);
    cctx_set_name(held, "long \"job\"");
    int more = getenv("INSPECT_TEST_CONTEXTS") ? atoi(getenv("INSPECT_TEST_CONTEXTS")) : 0;
    cctx_t **many = calloc((size_t)more + 1, sizeof *many);
    for (int i = 0; i < more; i++)
        many[i] = cctx_with_cancel(held, NULL);
    if (getenv("INSPECT_TEST_FORK") && strcmp(getenv("INSPECT_TEST_FORK"), "late") != 0) {
        /* "ready" waits for the child's fork handlers, which run before fork
         * returns in it: the byte it writes says they have. */
        int handled[2];
        CHECK(pipe(handled) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            char b = 'h';
            (void)!write(handled[1], &b, 1);
            while (read(0, &b, 1) > 0)
                ;
            _exit(0);
        }
        char b;
        CHECK(read(handled[0], &b, 1) == 1);
    }
    enum { N = 3 };
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, churn, NULL);
    printf("ready\n");
    fflush(stdout);
    char b;
    while (read(0, &b, 1) > 0) {
        if (b != 'f')
            continue;
        /* Asked to fork now (INSPECT_TEST_FORK=late): the child holds
         * whatever descriptors it inherits until standard input closes. */
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            while (read(0, &b, 1) > 0)
                ;
            _exit(0);
        }
        printf("forked\n");
        fflush(stdout);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < more; i++)
        cctx_release(many[i]);
    free(many);
    cctx_release(held);
    cctx_release(root);
}

struct served {
    pid_t pid;
    int to, from; /* its stdin (closing it ends it), its stdout */
    char dir[64], sock[128];
};

/* knob: one more "NAME=value" for the program (see inspect_under_load), or
 * NULL. */
static void start_served(struct served *s, bool inspect, const char *knob)
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
    /* The sanitizers' settings go along (leak checking off, as run_child does),
     * but for ThreadSanitizer's deadlock detector in a program that forks: it
     * holds at most 64 locks a thread, fewer than the registry's fork handler
     * takes. */
    char tsan[512];
    bool forks = knob && strncmp(knob, "INSPECT_TEST_FORK=", 18) == 0;
    snprintf(tsan, sizeof tsan, "TSAN_OPTIONS=%s%s",
             getenv("TSAN_OPTIONS") ? getenv("TSAN_OPTIONS") : "",
             forks ? ":detect_deadlocks=0" : "");
    char *debug = inspect ? "CCTX_DEBUG=inspect" : "CCTX_DEBUG=", *more = (char *)knob;
    char *env[] = {debug, dirvar, "ASAN_OPTIONS=detect_leaks=0", tsan, more, NULL};
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

/* A connection to the socket, or -1 (errno set). */
static int connect_to(const char *sock)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Asks over the socket; the answer (malloc'd, NUL-terminated), or NULL if
 * the connection failed (errno set). */
static char *ask(const char *sock, const char *format, size_t *len)
{
    int fd = connect_to(sock);
    if (fd < 0)
        return NULL;
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
    start_served(&s, true, NULL);
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
    bool parsed = have_python(); /* else the test ends as skipped, below */
    if (parsed) {
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
    /* Sized: the first line gives the length of the rest. */
    char *sized = ask(s.sock, "json sized", &len);
    CHECK(sized && strncmp(sized, "size ", 5) == 0);
    char *body = strchr(sized, '\n') + 1;
    CHECK_EQ(strtoull(sized + 5, NULL, 10), len - (size_t)(body - sized));
    CHECK(body[0] == '[' && strstr(body, "\"name\":\"inspect-root\""));
    free(sized);

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
    if (!parsed)
        SKIP("python3, to parse the JSON answer (all else was checked)");
}


/* Whether the peer closes fd within ms (what it sends first is dropped). */
static bool closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, ms) == 0)
        return false;
    char b[4096];
    ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN);
}

/* A request line ended by CR LF (as a terminal or a line-minded client
 * sends it) is a request as any other: it was "unknown format". */
TEST(inspect_says_why_a_dump_could_not_be_made)
{
    struct served s;
    start_served(&s, true, "INSPECT_TEST_NO_MEMORY=1");
    size_t len;
    char *answer = ask(s.sock, "json sized", &len);
    CHECK(answer);
    CHECK_STR(answer, "cctx: no dump: out of memory\n"); /* before: nothing */
    free(answer);
    stop_served(&s);
}

TEST(inspect_takes_a_request_ended_by_cr_lf)
{
    struct served s;
    start_served(&s, true, NULL);
    size_t len;
    char *text = ask(s.sock, "text\r", &len);
    CHECK(text && strstr(text, "inspect-root"));
    free(text);
    stop_served(&s);
}

TEST(inspect_gives_a_slow_asker_2_s_in_all)
{
    struct served s;
    start_served(&s, true, NULL);
    int64_t t0 = real_now();
    int fd = connect_to(s.sock);
    CHECK(fd >= 0);
    /* A byte every 0.9 s, each well within 2 s of the last: were the bound
     * per byte, the 15 bytes a request may have would hold the thread 13.5 s. */
    bool closed = false;
    for (int i = 0; i < 20 && !closed; i++)
        closed = send(fd, "t", 1, MSG_NOSIGNAL) != 1 || closed_within(fd, 900);
    int64_t took = real_now() - t0;
    printf("a slow asker was given up on after %.1f s\n", (double)took / 1e9);
    CHECK(closed);
    CHECK(took >= (int64_t)1900000000 && took < (int64_t)8000000000);
    close(fd);
    size_t len; /* and the thread is free for the next client */
    char *text = ask(s.sock, "text", &len);
    CHECK(text && strstr(text, "inspect-root"));
    free(text);
    stop_served(&s);
}

TEST(inspect_gives_a_slow_reader_5_s_in_all)
{
    struct served s;
    start_served(&s, true, "INSPECT_TEST_CONTEXTS=20000"); /* a dump of about 2 MB */
    int fd = connect_to(s.sock);
    CHECK(fd >= 0);
    CHECK(send(fd, "text\n", 5, MSG_NOSIGNAL) == 5);
    /* The 5 s start once the dump is made, when the first byte comes. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 60000) == 1);
    int64_t t0 = real_now();
    /* 16 KiB every 0.2 s: the program's sends all go through, each well
     * within 5 s, so a bound per send never comes; the whole would take 25 s. */
    static char buf[16384];
    size_t got = 0;
    bool closed = false;
    while (!closed && real_now() - t0 < (int64_t)20000000000) {
        nanosleep(&(struct timespec){0, 200000000}, NULL);
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        closed = r == 0 || (r < 0 && errno != EAGAIN);
        got += r > 0 ? (size_t)r : 0;
    }
    int64_t took = real_now() - t0;
    printf("a slow reader was given up on after %.1f s and %zu bytes\n", (double)took / 1e9, got);
    CHECK(closed);
    CHECK(took >= (int64_t)4000000000 && took < (int64_t)15000000000);
    close(fd);
    stop_served(&s);
}

TEST(inspect_leaves_no_listener_in_a_child_of_fork)
{
    struct served s;
    start_served(&s, true, "INSPECT_TEST_FORK=1");
    size_t len;
    char *text = ask(s.sock, "text", &len);
    CHECK(text && strstr(text, "inspect-root"));
    free(text);
    /* Killed, the parent runs no atexit: the socket's file stays. */
    CHECK(kill(s.pid, SIGKILL) == 0);
    int status;
    CHECK(waitpid(s.pid, &status, 0) == s.pid);
    struct stat st;
    CHECK(stat(s.sock, &st) == 0 && S_ISSOCK(st.st_mode));
    /* The child, still alive, does not keep it listening: a connection is
     * refused at once, not queued for no one to take. */
    CHECK(connect_to(s.sock) < 0 && errno == ECONNREFUSED);
    char exe[512], cmd[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(cmd, sizeof cmd,
             "CCTX_INSPECT_DIR=%s %s/cctx-inspect %ld 2>&1 | grep -q 'cannot reach'", s.dir, exe,
             (long)s.pid);
    CHECK_EQ(system(cmd), 0);
    close(s.to); /* the child ends */
    close(s.from);
    CHECK(unlink(s.sock) == 0);
    CHECK(rmdir(s.dir) == 0);
}

/* How many sockets process pid has open. */
static int sockets_of(pid_t pid)
{
    char dir[64], path[384], target[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(dir);
    CHECK(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0 && (target[len] = '\0', strncmp(target, "socket:", 7) == 0))
            n++;
    }
    closedir(d);
    return n;
}

/* A client connected when the program forks: the child holds a copy of the
 * accepted connection, so closing the parent's descriptor sent no end, and a
 * client reading to the end (an unsized request) waited as long as the
 * child lived. */
TEST(inspect_answer_ends_for_a_client_served_as_the_program_forks)
{
    struct served s;
    start_served(&s, true, "INSPECT_TEST_FORK=late");
    int before = sockets_of(s.pid);
    int fd = connect_to(s.sock);
    CHECK(fd >= 0);
    /* The serving thread has taken the connection once it has one socket
     * more than the listener. */
    int64_t give_up = real_now() + CCTX_SEC(10);
    while (sockets_of(s.pid) == before) {
        CHECK(real_now() < give_up);
        real_sleep_ms(1);
    }
    CHECK(write(s.to, "f", 1) == 1);
    char forked[9] = {0}; /* start_served read "ready" without its newline */
    size_t got = 0;
    while (got < 8) {
        ssize_t r = read(s.from, forked + got, 8 - got);
        CHECK(r > 0);
        got += (size_t)r;
    }
    CHECK_STR(forked, "\nforked\n");
    dprintf(fd, "text\n");
    size_t n = 0;
    char buf[4096];
    int64_t until = real_now() + CCTX_SEC(5); /* generous: it takes milliseconds */
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = until - real_now();
        CHECK(left > 0 && poll(&p, 1, (int)(left / 1000000) + 1) >= 0);
        if (p.revents == 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf);
        CHECK(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    CHECK(n > 0);
    close(fd);
    stop_served(&s); /* the child ends with its standard input too */
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
    start_served(&s, true, NULL);
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
