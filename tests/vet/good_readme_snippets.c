// expect: none
/* The README's other examples, each in a function of its own. */
#include <assert.h>
#include <cctx.h>
#include <cctx/group.h>
#include <cctx/io.h>
#include <cctx/signal.h>
#include <cctx/testing.h>

void log_cause(cctx_t *ctx);
int download(cctx_t *ctx, const char *url, char **body);
void start_connection(cctx_t *server, int fd);

void fake_clock(void)
{
    cctx_fake_clock_start(0);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(30), NULL);
    cctx_fake_clock_advance(CCTX_SEC(29));
    assert(cctx_err(ctx) == 0);
    cctx_fake_clock_advance(CCTX_SEC(1));  /* the deadline fires, and its after-functions */
    assert(cctx_err(ctx) == ETIMEDOUT);    /* have run, before advance returns            */
    cctx_release(ctx);
    cctx_fake_clock_stop();
}

void echo(cctx_t *conn_ctx, int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = cctx_read(conn_ctx, fd, buf, sizeof buf)) > 0)
        if (cctx_write(conn_ctx, fd, buf, (size_t)n) != n)
            break;                        /* short count: the context ended mid-write */
    if (n < 0 && (errno == ECANCELED || errno == ETIMEDOUT))
        log_cause(conn_ctx);              /* cctx_cause says who, where and when */
}

struct job {
    const char *url;
    char *body;
};

static int fetch(cctx_t *ctx, void *arg) {        /* 0, or an error code */
    struct job *j = arg;
    return download(ctx, j->url, &j->body);        /* gives up when ctx ends */
}

int group(cctx_t *request_ctx, struct job *jobs, size_t njobs)
{
    cctx_group_t *g = cctx_group_new(request_ctx);
    cctx_group_limit(g, 4);                           /* at most 4 downloads at a time */
    for (size_t i = 0; i < njobs; i++)
        if (cctx_group_go(g, fetch, &jobs[i]) != 0)
            break;                                    /* a task failed: stop starting */
    int err = cctx_group_wait(g);                     /* first non-zero result, or 0 */
    cctx_group_free(g);
    return err;
}

void signals(int listener)
{
    static const int stop[] = {SIGINT, SIGTERM};
    cctx_t *server = cctx_with_signals(cctx_background(), stop, 2, NULL);
    while (cctx_err(server) == 0) {
        int fd = cctx_accept(server, listener, NULL, NULL);   /* ends on SIGINT/SIGTERM */
        if (fd >= 0)
            start_connection(server, fd);
    }
    cctx_release(server);
}

void dump(void)
{
    FILE *f = fopen("contexts.html", "w");
    cctx_dump(NULL, f, CCTX_DUMP_HTML);   /* or a root: cctx_dump(server_ctx, f, ...) */
    fclose(f);
}
