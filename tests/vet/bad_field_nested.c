// expect: field@28
// args: --enable=field
/* A struct handed to a thread carries the structs nested in it: their
 * context fields are exempt as its own are, an anonymous struct or union
 * and a named one declared inside it alike. A nested struct of a struct
 * that is not handed over is reported. */
#include <cctx.h>
#include <pthread.h>

struct outer {
    struct {
        cctx_t *ctx;
    } inner;
    union {
        struct {
            cctx_t *deep;
        } s;
        cctx_t *alt;
    } u;
    struct named_inner {
        cctx_t *ctx;
    } named;
    int x;
};

struct kept {
    struct {
        cctx_t *ctx;
    } inner;
};

void *run(void *);

int go(pthread_t *t, struct outer *o)
{
    return pthread_create(t, NULL, run, o);
}
