// expect: background@11 background@19 background@21
/* A function that was handed a context, or holds one, starts from the root:
 * the caller's deadline and cancellation are lost. */
#include <cctx.h>

int fetch(cctx_t *ctx, const char *url);

int get_user(cctx_t *ctx, const char *id)
{
    (void)ctx;
    return fetch(cctx_background(), id);
}

int main(void)
{
    cctx_t *req = cctx_with_timeout(cctx_background(), CCTX_SEC(1), NULL);
    if (!req)
        return 1;
    fetch(cctx_todo(), "a"); /* req is live here */
    CCTX_AUTO cctx_t *step =
        cctx_with_timeout(cctx_background(), CCTX_MSEC(10), NULL); /* not from req */
    fetch(step, "b");
    cctx_release(req);
    return 0;
}
