// expect: lostrelease@21 lostrelease@23 lostrelease@28 lostrelease@30 lostrelease@45 lostrelease@52
/* A `for` loop the user writes in a macro's argument (a timing or locking
 * wrapper) is read where it is written: its condition is its exit, and a
 * leak after it is found. The parts of a header that lacks some are told
 * apart there too (a loop without a condition leaves by its break only). */
#include <cctx.h>

int work(cctx_t *c);
long clock_ticks(void);
void log_ticks(long);
#define TIMED(stmt)                                                                                \
    do {                                                                                           \
        long t0 = clock_ticks();                                                                   \
        stmt;                                                                                      \
        log_ticks(clock_ticks() - t0);                                                             \
    } while (0)
#define ID(x) x

int each(cctx_t *p, int n)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    TIMED(for (int i = 0; i < n; i++) work(c));
    return 0;
}

int condition_only(cctx_t *p, int n)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    ID(for (; n > 0;) n -= work(c));
    return 0;
}

int endless_with_break(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    ID(for (;;) {
        cctx_release(c);
        break;
    });
    return 0;
}

int early_return(cctx_t *p, int n)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    ID(for (int i = 0; i < n; i++) {
        if (work(c) == i) {
            cctx_release(c);
            return 0;
        }
    });
    return 1;
}
