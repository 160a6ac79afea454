// expect: ctxfirst@7 ctxfirst@9
/* The context goes first, as in every cctx call. */
#include <cctx.h>

struct conn;

int serve(struct conn *c, cctx_t *ctx);
int serve(struct conn *c, cctx_t *ctx) { (void)c; return cctx_err(ctx); }
void log_it(int level, const cctx_t *ctx, const char *msg);
