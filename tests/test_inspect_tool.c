/* SPDX-License-Identifier: MIT */
/*
 * cctx-inspect against a stand-in for the program: a socket this test
 * listens on and answers by hand, so that the answers a real program gives
 * only when something goes wrong (cut short, silent, kept open, from an older
 * cctx) come on cue. The tool prints a whole answer without its size, and
 * otherwise prints nothing and exits 1 within its timeout.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "harness.h"
#include "support.h"

/* Generous: a tool that hangs is killed after this, and the test fails. */
#define TOOL_BOUND_NS ((int64_t)30 * 1000000000)

struct stand_in {
    char dir[64], sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listener;
};

static void stand_in_listen(struct stand_in *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/cctx-inspect-tool-XXXXXX");
    CHECK(mkdtemp(s->dir));
    /* The tool takes the pid only to name the socket. */
    snprintf(s->sock, sizeof s->sock, "%s/%ld.sock", s->dir, (long)getpid());
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", s->sock);
    s->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s->listener >= 0);
    CHECK(bind(s->listener, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(s->listener, 4) == 0);
}

static void stand_in_done(struct stand_in *s)
{
    close(s->listener);
    CHECK(unlink(s->sock) == 0);
    CHECK(rmdir(s->dir) == 0);
}

/* Takes the tool's connection and its request line (without the newline);
 * -1 if it did not connect and ask within the bound (an older tool that
 * refused its arguments, say). */
static int stand_in_accept(struct stand_in *s, char *req, size_t size)
{
    struct pollfd p = {.fd = s->listener, .events = POLLIN};
    if (poll(&p, 1, (int)(TOOL_BOUND_NS / 1000000)) != 1)
        return -1;
    int fd = accept4(s->listener, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fd >= 0);
    size_t n = 0;
    while (n < size - 1) {
        struct pollfd q = {.fd = fd, .events = POLLIN};
        CHECK(poll(&q, 1, (int)(TOOL_BOUND_NS / 1000000)) == 1);
        ssize_t r = read(fd, req + n, 1);
        CHECK(r == 1);
        if (req[n] == '\n')
            break;
        n++;
    }
    req[n] = '\0';
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t n = strlen(text);
    CHECK(send(fd, text, n, MSG_NOSIGNAL) == (ssize_t)n);
}

struct tool {
    pid_t pid;
    int out, err;
};

/* The tool's standard output goes to stdout_path when one is given, else
 * into a pipe the test reads. */
static void tool_start_to(struct tool *t, const struct stand_in *s, const char *opt1,
                          const char *opt2, const char *stdout_path)
{
    char exe[512], pid[32], dirvar[128], tsan[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    exe[n] = '\0';
    snprintf(strrchr(exe, '/'), sizeof exe - (size_t)(strrchr(exe, '/') - exe), "/cctx-inspect");
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(dirvar, sizeof dirvar, "CCTX_INSPECT_DIR=%s", s->dir);
    snprintf(tsan, sizeof tsan, "TSAN_OPTIONS=%s",
             getenv("TSAN_OPTIONS") ? getenv("TSAN_OPTIONS") : "");
    char *env[] = {dirvar, "ASAN_OPTIONS=detect_leaks=0", tsan, NULL};
    char *argv[] = {exe, pid, (char *)opt1, (char *)opt2, NULL};
    int out[2], err[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdout_path)
        posix_spawn_file_actions_addopen(&fa, 1, stdout_path, O_WRONLY, 0);
    else
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    CHECK(posix_spawn(&t->pid, exe, &fa, NULL, argv, env) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    t->out = out[0];
    t->err = err[0];
}

static void tool_start(struct tool *t, const struct stand_in *s, const char *opt1, const char *opt2)
{
    tool_start_to(t, s, opt1, opt2, NULL);
}

/* Waits for the tool to end (killed past the bound: the test fails) and
 * returns its exit status; its output in out and err, NUL-terminated. */
static int tool_end(struct tool *t, char *out, size_t out_size, char *err, size_t err_size)
{
    int64_t deadline = real_now() + TOOL_BOUND_NS;
    size_t got[2] = {0, 0}, size[2] = {out_size - 1, err_size - 1};
    char *buf[2] = {out, err};
    int fds[2] = {t->out, t->err};
    while (fds[0] >= 0 || fds[1] >= 0) {
        struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
        int64_t left = deadline - real_now();
        if (left <= 0 || poll(p, 2, (int)(left / 1000000) + 1) == 0) {
            kill(t->pid, SIGKILL);
            fprintf(stderr, "cctx-inspect still ran after %d s\n",
                    (int)(TOOL_BOUND_NS / 1000000000));
            CHECK(!"cctx-inspect ended in time");
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i] < 0 || !p[i].revents)
                continue;
            char scratch[256];
            bool full = got[i] == size[i];
            ssize_t r = read(fds[i], full ? scratch : buf[i] + got[i],
                             full ? sizeof scratch : size[i] - got[i]);
            if (r <= 0) {
                close(fds[i]);
                fds[i] = -1;
            } else if (!full) {
                got[i] += (size_t)r;
            }
        }
    }
    out[got[0]] = '\0';
    err[got[1]] = '\0';
    int status;
    CHECK(waitpid(t->pid, &status, 0) == t->pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

TEST(inspect_tool_prints_a_whole_answer_without_waiting_for_the_close)
{
    struct stand_in s;
    stand_in_listen(&s);
    struct tool t;
    tool_start(&t, &s, "--json", NULL);
    char req[32];
    int fd = stand_in_accept(&s, req, sizeof req);
    CHECK(fd >= 0);
    CHECK_STR(req, "json sized");
    /* The connection stays open after the answer, as when a child of fork()
     * holds a copy of it: the size says the answer is whole. */
    send_text(fd, "size 8\n[\"a\",1]\n");
    char out[256], err[256];
    CHECK_EQ(tool_end(&t, out, sizeof out, err, sizeof err), 0);
    CHECK_STR(out, "[\"a\",1]\n");
    CHECK_STR(err, "");
    close(fd);
    stand_in_done(&s);
}

TEST(inspect_tool_reports_an_answer_cut_short)
{
    struct stand_in s;
    stand_in_listen(&s);
    struct tool t;
    tool_start(&t, &s, NULL, NULL);
    char req[32];
    int fd = stand_in_accept(&s, req, sizeof req);
    CHECK(fd >= 0);
    /* The program gave up after the first line of 100,000 bytes. */
    send_text(fd, "size 100000\nroot 0x1 made at cctx:0 in cctx_background, active\n");
    close(fd);
    char out[256], err[512];
    CHECK_EQ(tool_end(&t, out, sizeof out, err, sizeof err), 1);
    CHECK_STR(out, ""); /* nothing of a cut answer */
    CHECK(strstr(err, "closed after 51 of 100000 bytes: the answer is incomplete"));
    stand_in_done(&s);
}

TEST(inspect_tool_gives_up_on_a_silent_process)
{
    struct stand_in s;
    stand_in_listen(&s);
    /* Nobody accepts: the socket a killed program left to a child of fork(). */
    struct tool t;
    int64_t t0 = real_now();
    tool_start(&t, &s, "--timeout", "0.5");
    char out[256], err[512];
    CHECK_EQ(tool_end(&t, out, sizeof out, err, sizeof err), 1);
    CHECK(strstr(err, "did not answer within 0.5 s"));
    CHECK(real_now() - t0 >= 500000000);
    char req[32];
    int fd = stand_in_accept(&s, req, sizeof req); /* the first connection, queued */
    CHECK(fd >= 0);
    close(fd);

    /* Silent midway. */
    tool_start(&t, &s, "--timeout", "0.5");
    fd = stand_in_accept(&s, req, sizeof req);
    CHECK(fd >= 0);
    send_text(fd, "size 10\nroot");
    CHECK_EQ(tool_end(&t, out, sizeof out, err, sizeof err), 1);
    CHECK_STR(out, "");
    CHECK(strstr(err, "sent nothing for 0.5 s after 4 of 10 bytes"));
    close(fd);
    stand_in_done(&s);
}

TEST(inspect_tool_takes_a_timeout_only_of_seconds)
{
    struct stand_in s;
    stand_in_listen(&s);
    const char *bad[] = {"0", "-1", "soon", "1s", "nan", "inf", "1e7"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct tool t;
        tool_start(&t, &s, "--timeout", bad[i]);
        char out[256], err[512];
        CHECK_EQ(tool_end(&t, out, sizeof out, err, sizeof err), 2);
        CHECK(strstr(err, "usage: cctx-inspect"));
    }
    stand_in_done(&s);
}

TEST(inspect_tool_reads_a_process_of_an_older_cctx)
{
    struct stand_in s;
    stand_in_listen(&s);
    struct tool t;
    tool_start(&t, &s, "--dot", NULL);
    char req[32];
    int fd = stand_in_accept(&s, req, sizeof req);
    CHECK(fd >= 0);
    CHECK_STR(req, "dot sized");
    /* What an older library says to a request it does not know. */
    send_text(fd, "cctx: unknown format (text, json, dot or html)\n");
    close(fd);
    fd = stand_in_accept(&s, req, sizeof req);
    CHECK(fd >= 0);
    CHECK_STR(req, "dot");
    send_text(fd, "strict digraph cctx {\n}\n");
    close(fd);
    char out[256], err[512];
    CHECK_EQ(tool_end(&t, out, sizeof out, err, sizeof err), 0);
    CHECK_STR(out, "strict digraph cctx {\n}\n");
    CHECK(strstr(err, "runs an older cctx"));
    stand_in_done(&s);
}

/* A whole answer that cannot be written (a full disk): the tool says so,
 * rather than exit 1 with nothing said. Small and large answers both: one
 * fails at the final flush, the other in the write itself. */
TEST(inspect_tool_says_why_it_could_not_write_the_answer)
{
    struct stand_in s;
    stand_in_listen(&s);
    static char big[200000];
    memset(big, 'x', sizeof big - 1);
    const char *bodies[] = {"[\"a\",1]\n", big};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct tool t;
        tool_start_to(&t, &s, "--json", NULL, "/dev/full");
        char req[32];
        int fd = stand_in_accept(&s, req, sizeof req);
        CHECK(fd >= 0);
        char head[32];
        snprintf(head, sizeof head, "size %zu\n", strlen(bodies[i]));
        send_text(fd, head);
        send_text(fd, bodies[i]);
        char out[256], err[512];
        CHECK_EQ(tool_end(&t, out, sizeof out, err, sizeof err), 1);
        if (!strstr(err, strerror(ENOSPC)))
            fprintf(stderr, "answer of %zu bytes, stderr: \"%s\"\n", strlen(bodies[i]), err);
        CHECK(strstr(err, "cctx-inspect: cannot write the answer: "));
        CHECK(strstr(err, strerror(ENOSPC)));
        close(fd);
    }
    stand_in_done(&s);
}
